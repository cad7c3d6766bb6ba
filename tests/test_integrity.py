"""Integrity and security: no shell injection from configs, late failures at parse time, report
directories of their own, and every rule quoting what it interpolates."""

from __future__ import annotations

import json
import string
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pathmoe.config import ConfigError, check_report_owner, load_experiment

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "configs" / "default.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]


def default_cfg() -> dict:
    return yaml.safe_load(DEFAULT.read_text())


def _with_payload(kind: str) -> dict:
    cfg = default_cfg()
    if kind == "output_dir":
        cfg["output_dir"] = "results/inj;touch pwned;#"
    elif kind == "run":
        cfg["runs"]["x;touch pwned;#"] = {"variant": "indep"}
    elif kind == "dataset":
        cfg["datasets"]["d;touch pwned;#"] = cfg["datasets"]["builtin"]
        cfg["defaults"]["dataset"] = "d;touch pwned;#"
    elif kind == "space":
        cfg["output_dir"] = "results/with space"
    return cfg


@pytest.mark.parametrize("kind, key", [("output_dir", "output_dir="), ("run", "runs.'x;touch pwned;#'"),
                                       ("dataset", "datasets.'d;touch pwned;#'"), ("space", "output_dir=")])
def test_injection_payloads_are_rejected_before_any_job(kind, key, tmp_path):
    """A real `snakemake all` (not a dry run) with each payload stops while parsing: one line naming
    the key, exit 1, nothing executed (no `pwned`, no output directory)."""
    config = tmp_path / "inj.yaml"
    config.write_text(yaml.safe_dump(_with_payload(kind)))
    res = subprocess.run([*SNAKEMAKE, "-d", str(tmp_path), "--configfile", str(config), "--cores", "1", "all"],
                         capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 1, out[-2000:]
    [line] = [x for x in out.splitlines() if x.startswith("pathmoe: bad config:")]
    assert key in line and "not allowed" in line
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "results").exists()


def _shell_commands(tmp_path: Path) -> dict[str, str]:
    """rule name -> shell command template of the workflow as Snakemake parsed it."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet=set())) as api:
        wf = api.workflow(resource_settings=ResourceSettings(), snakefile=ROOT / "Snakefile", workdir=tmp_path)
        return {r.name: r.shellcmd for r in wf._workflow.rules if r.shellcmd}


# Placeholders that hold a shell snippet by design: built from code constants, never from config values.
SHELL_SNIPPETS = {"params.launcher"}


def test_every_rule_quotes_what_it_interpolates(tmp_path):
    """Every `{...}` of every rule's shell command is quoted by Snakemake (`:q`), and no config value
    (output or report directory) is pasted into a command string."""
    commands = _shell_commands(tmp_path)
    assert {"fetch_documents", "train", "eval", "traces", "analyze_traces", "table_plain", "figure",
            "document", "audit", "report_spec"} <= set(commands)
    unquoted = [(rule, field) for rule, cmd in commands.items()
                for _, field, spec, _ in string.Formatter().parse(cmd)
                if field is not None and spec != "q" and field not in SHELL_SNIPPETS]
    assert unquoted == []
    exp = load_experiment(DEFAULT)
    for rule, cmd in commands.items():
        assert str(exp.output_dir) not in cmd and str(exp.report_dir) not in cmd, rule


def test_every_deterministic_rule_is_re_executable(tmp_path):
    """Each command a rule records as deterministic is on re-execution's allow-list (else the audit
    would refuse the pipeline's own records)."""
    from pathmoe.analysis.suite import TRACE_ANALYSES
    from pathmoe.audit.reexec import REEXEC_COMMANDS

    found = set()
    for rule, cmd in _shell_commands(tmp_path).items():
        if "--deterministic" not in cmd:
            continue
        stage, command = cmd.split(" -- pathmoe ", 1)[1].split()[:2]
        commands = TRACE_ANALYSES if command == "{wildcards.kind:q}" else [command]
        found |= {(stage, c) for c in commands}
        assert all((stage, c) in REEXEC_COMMANDS for c in commands), rule
    assert {("data", "tokenize"), ("report", "table"), ("eval", "collect")} <= found


@pytest.mark.parametrize("override, match", [
    ({"train": {"lr": float("nan")}}, "config key train.lr=nan is not allowed: numbers must be finite"),
    ({"train": {"lr": float("inf")}}, "config key train.lr=inf is not allowed: numbers must be finite"),
    ({"output_dir": ""}, "config key output_dir='' is not allowed"),
    ({"train": {"warmup_steps": 101}}, r"runs\.indep\.train\.warmup_steps=101 exceeds train\.steps=100"),
    ({"eval": {"num_fewshot": {"triviaqa": 5}}}, r"config key eval\.num_fewshot names task\(s\) \['triviaqa'\]"),
    ({"scales": {"tiny": {"model": {"dispatch": "deepspeed", "expert_parallel_size": 2}}}},
     r"runs\.indep\.model\.expert_parallel_size=2 must divide the run's 1 training process"),
    ({"eval": {"tasks": ["offline_next", "hellaswagg"]}}, r"config key eval\.tasks: unknown task\(s\) \['hellaswagg'\]"),
    ({"runs": {"indep": {"variant": "indep", "eval": {"curve_tasks": ["nope_task"]}}}},
     r"config key runs\.indep\.eval\.curve_tasks: unknown task\(s\) \['nope_task'\]"),
])
def test_late_failures_fail_at_parse_time(override, match):
    with pytest.raises(ConfigError, match=match) as err:
        load_experiment(DEFAULT, override)
    assert "\n" not in str(err.value)


def test_known_tasks_pass_fast():
    """The paper's tasks are found by the plain-text scan of lm-eval's task YAMLs (no full index)."""
    from pathmoe.eval import harness

    harness._build_task_manager.cache_clear()
    paper = load_experiment(ROOT / "configs" / "paper-0.9b.yaml")
    assert "hellaswag" in paper.runs["indep_s0"].eval["tasks"]
    assert harness._build_task_manager.cache_info().currsize == 0  # lm-eval's index was never built


def test_experiments_write_reports_to_their_own_directories(tmp_path):
    """Default report_dir is reports/<name>; a second experiment pointed at a report directory that
    another one already wrote is refused at parse time, in one line."""
    dirs = {name: load_experiment(ROOT / "configs" / f"{name}.yaml").report_dir
            for name in ("default", "paper-0.9b", "paper-16b")}
    assert dirs == {n: Path("reports") / n for n in dirs}
    cfg = yaml.safe_load((ROOT / "tests/configs/e2e.yaml").read_text())
    del cfg["report_dir"]
    assert load_experiment(cfg).report_dir == Path("reports/e2e")

    first = tmp_path / "first.yaml"
    first.write_text(yaml.safe_dump(cfg))
    res = subprocess.run([*SNAKEMAKE, "-d", str(tmp_path), "--configfile", str(first), "--cores", "1",
                          "results/e2e/report_spec.json"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, (res.stdout + res.stderr)[-2000:]
    assert json.loads((tmp_path / "reports/e2e/experiment.json").read_text()) == {
        "name": "e2e", "output_dir": "results/e2e"}
    second = tmp_path / "second.yaml"
    second.write_text(yaml.safe_dump({**cfg, "name": "other", "report_dir": "reports/e2e"}))
    res = subprocess.run([*SNAKEMAKE, "-d", str(tmp_path), "--configfile", str(second), "-n", "all"],
                         capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 1
    [line] = [x for x in out.splitlines() if x.startswith("pathmoe: bad config:")]
    assert "report_dir='reports/e2e' holds the reports of experiment 'e2e'" in line
    # the same experiment (a config edit) keeps its directory
    check_report_owner(load_experiment(cfg, {"report_dir": str(tmp_path / "reports/e2e")}))
