"""The whole DAG on a reduced embedded default: every stage, every table and figure, then audits.

`tests/configs/e2e.yaml` keeps the default's structure (built-in corpus, DeepSpeed training on CPU,
a path-restricted continuation, lm-eval offline tasks, every analysis, Tables 1-9, Figs 3-8) with
three short runs so CI can afford it. The full embedded default (`snakemake all`) is measured and
recorded in benchmarks/pipeline_cpu.md.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # minutes on 2 CPU cores: `pytest -m "not slow"` leaves it out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    work = tmp_path_factory.mktemp("e2e")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work),
           "--configfile", str(ROOT / "tests/configs/e2e.yaml"), "--cores", "2", "all"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, (res.stdout + res.stderr)[-5000:]
    return work


def test_every_table_and_figure_is_produced(workdir):
    reports = workdir / "results/e2e/reports"
    for n in range(1, 10):
        assert (reports / f"tables/table{n}.tex").stat().st_size > 200
    for fig in ("fig3", "fig4", "fig5", "fig6a", "fig6b", "fig7", "fig8"):
        assert (reports / f"figures/{fig}.pdf").stat().st_size > 1000
        assert (reports / f"figures/{fig}.png").stat().st_size > 1000
    assert "table1" in (reports / "summary.md").read_text()
    table1 = json.loads((reports / "tables/table1.json").read_text())
    assert set(table1["rows"]) == {"Indep-MoE", "PathB4-MoE"}
    assert all(0 <= row["offline_mc"] <= 100 for row in table1["rows"].values())


def test_html_report_holds_every_figure_and_the_training_curves(workdir):
    """`snakemake all --report report.html` embeds each paper figure and each run group's curves."""
    import base64

    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "all",
           "--report", "report.html", "--configfile", str(ROOT / "tests/configs/e2e.yaml")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    html = (workdir / "report.html").read_text()
    results = json.loads(re.search(r"var results = (\{.*?\});\s*</script>", html, re.S).group(1))
    categories = json.loads(re.search(r"var categories = (\{.*?\});\s*</script>", html, re.S).group(1))
    reports = "results/e2e/reports"
    figures = [f"{reports}/figures/{f}.png" for f in ("fig3", "fig4", "fig5", "fig6a", "fig6b", "fig7", "fig8")]
    curves = [f"{reports}/figures/curves/{g}.png" for g in ("indep", "pathb2", "indep_b1", "pathb2_top4")]
    for path in figures + curves:
        assert path in results, sorted(results)
        head, data = results[path]["data_uri"].split("base64,", 1)
        assert head.startswith("data:image/png") and base64.b64decode(data) == (workdir / path).read_bytes()
    assert sorted(p for files in categories["Training curves"].values() for p in files) == sorted(curves)
    assert "pathb2_top4" in results[f"{reports}/figures/curves/pathb2_top4.png"]["caption"]


def test_path_restricted_run_keeps_to_its_paths(workdir):
    run = workdir / "results/e2e/runs/pathb2_top4_s0"
    paths = json.loads((run / "restricted_paths.json").read_text())
    assert len(paths["paths"]) <= 4


def test_identical_training_specs_share_one_training(workdir):
    """`indep_b1` resolves to Indep-MoE's training spec: it is evaluated on indep's checkpoints."""
    runs = workdir / "results/e2e/runs"
    assert not (runs / "indep_b1_s0/train_summary.json").exists() and not (runs / "indep_b1_s0/hf").exists()
    assert json.loads((runs / "indep_b1_s0/run_config.json").read_text())["train_dir"].endswith("runs/indep_s0")
    assert json.loads((runs / "indep_b1_s0/eval/selected.json").read_text())["checkpoint"].endswith("indep_s0/hf/step_16")
    ours, theirs = (pd.read_csv(runs / f"{r}/eval/records.csv") for r in ("indep_b1_s0", "indep_s0"))
    assert (ours["run"] == "indep_b1_s0").all() and (ours["variant"] == "pathb1").all()
    cols = ["step", "task", "metric", "value"]
    pd.testing.assert_frame_equal(ours[cols], theirs[cols])


def test_rerun_redoes_nothing(workdir):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
           "--configfile", str(ROOT / "tests/configs/e2e.yaml"), "-n", "all"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0 and "Nothing to be done" in res.stdout + res.stderr


def test_an_eval_setting_edit_reevaluates_without_retraining(workdir):
    cfg = yaml.safe_load((ROOT / "tests/configs/e2e.yaml").read_text())
    cfg["eval"]["batch_size"] = 7
    edited = workdir / "e2e_eval_edit.yaml"
    edited.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
           "--configfile", str(edited), "-n", "all"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    stats = res.stdout[res.stdout.index("Job stats:"):]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", stats, flags=re.M))
    assert int(counts["eval"]) == 4 and "train" not in counts and "train_config" not in counts


def test_audit_verifies_and_reexecutes_then_catches_a_changed_byte(workdir):
    snakemake = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
                 "--configfile", str(ROOT / "tests/configs/e2e.yaml"), "--cores", "2", "audit"]
    res = subprocess.run(snakemake, capture_output=True, text=True)
    assert res.returncode == 0, (res.stdout + res.stderr)[-5000:]
    summary = json.loads((workdir / "results/e2e/audit/audit.json").read_text())["summary"]
    assert summary["reexec-ok"] > 0 and set(summary) <= {"ok", "reexec-ok"}
    assert "reexec-ok" in (workdir / "results/e2e/audit/audit.md").read_text()
    # a changed byte fails the audit, and the failed `snakemake audit` keeps its report (the log)
    table = workdir / "results/e2e/reports/tables/table4.tex"
    table.write_bytes(table.read_bytes().replace(b"bits", b"bitz", 1))
    audit = [sys.executable, "-m", "pathmoe.cli", "audit", "verify", "results/e2e"]
    res = subprocess.run(audit, cwd=workdir, capture_output=True, text=True)
    assert res.returncode == 1 and "tampered" in res.stdout + res.stderr
    # only the audit reruns (the tampered table must not be rebuilt first); data jobs are not re-run
    res = subprocess.run([*snakemake, "--forcerun", "audit", "--rerun-triggers", "input",
                          "--config", "audit={'reexec_skip_stages': ['data', 'analyze', 'report', 'eval']}"],
                         capture_output=True, text=True)
    assert res.returncode != 0
    assert not (workdir / "results/e2e/audit/audit.json").exists()
    assert "**tampered**" in (workdir / "results/e2e/audit/audit.md").read_text()
