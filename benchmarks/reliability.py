"""Replay the integrity and security probes against the real pipeline; print held/failed for each.

    python benchmarks/reliability.py [--work-dir DIR] [--out benchmarks/reliability.md]

Builds one small experiment end to end with Snakemake (built-in corpus, one DeepSpeed run on CPU
with two exports and a DeepSpeed checkpoint, lm-eval offline task, traces, analyses, Tables 1 and
4), then replays what a careful user and a site's reliability engineer would try: shell injection
through config values, planted provenance records, re-execution of another user's directory,
tampered shards / weights / safetensors headers / DeepSpeed checkpoints, interrupted runs with
missing or inconsistent markers, two experiments sharing a report directory, and config values
that used to fail only inside a job. Every destructive probe works on a fresh copy of the built
directory. A probe "held" when the pipeline refused or flagged it as documented (docs/audit.md,
docs/pipeline.md, docs/training.md); the evidence column quotes the message it gave.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
PATHMOE = [sys.executable, "-m", "pathmoe.cli"]
RUN = "results/rel/runs/indep_s0"

CONFIG = {
    "name": "rel", "seeds": [0], "defaults": {"scale": "tiny", "dataset": "builtin"},
    "scales": {"tiny": {"model": {"vocab_size": None, "d_model": 32, "n_layers": 4, "n_heads": 2, "n_kv_heads": 1,
                                  "n_experts": 4, "top_k": 2, "expert_hidden": 32, "max_seq_len": 256}}},
    "datasets": {"builtin": {"source": {"kind": "builtin", "num_documents": 300, "seed": 0},
                             "tokenizer": {"kind": "bpe", "vocab_size": 512}, "validation_documents": 30}},
    "variants": {"indep": {"label": "Indep-MoE", "router": "linear", "block_size": 1, "lbl_coef": 0.01}},
    "train": {"steps": 10, "micro_batch_size": 8, "global_batch_size": 8, "seq_len": 64, "warmup_steps": 2,
              "log_every": 5, "ckpt_every": 5, "export_every": 5, "keep_exports": 2, "threads": 1},
    "eval": {"tasks": ["offline_mc"], "curve_tasks": [], "batch_size": 32, "ppl_tokens": 1024,
             "offline_examples": 20},
    "analysis": {"tokens": 1024, "seq_len": 64, "batch_size": 16, "permute_p": [0.0, 1.0], "top_paths": 4},
    "runs": {"indep": {"variant": "indep"}},
    "report": {"tasks": [{"task": "offline_mc", "metric": "acc_norm", "label": "MC"}],
               "tables": {"table1": {"rows": [{"label": "Indep-MoE", "run": "indep"}]},
                          "table4": {"rows": [{"label": "Indep-MoE", "run": "indep"}]}}},
}


@dataclass
class Probe:
    group: str
    name: str
    expected: str
    held: bool = False
    evidence: str = ""
    seconds: float = 0.0


def run(cmd: list[str], cwd: Path, timeout: float = 1800, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def first_error(proc: subprocess.CompletedProcess) -> str:
    """The last non-empty line of a command's output (what a user would read first)."""
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    return lines[-1] if lines else f"exit {proc.returncode}, no output"


def one_line_error(proc: subprocess.CompletedProcess, command: str) -> str | None:
    """The single `pathmoe <command>: error: ...` line of a failed command (None when there is not
    exactly one, or a traceback)."""
    lines = [line for line in proc.stderr.splitlines() if line.startswith(f"pathmoe {command}: error:")]
    return lines[0] if len(lines) == 1 and "Traceback" not in proc.stderr else None


def error_lines(proc: subprocess.CompletedProcess, marker: str) -> list[str]:
    return [line for line in (proc.stdout + proc.stderr).splitlines() if marker in line]


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def weight_offset(safetensors: Path) -> int:
    (header_len,) = struct.unpack("<Q", safetensors.read_bytes()[:8])
    return 8 + header_len + 100


def audit(work: Path, *extra: str) -> subprocess.CompletedProcess:
    return run([*PATHMOE, "audit", "verify", "results/rel", "reports/rel", *extra, "--json", "audit.json",
                "--out", "audit.md"], work)


def audit_problem(work: Path, artifact: str) -> str:
    report = json.loads((work / "audit.json").read_text())
    for a in report["artifacts"]:
        if a["artifact"].endswith(artifact):
            return f"{a['status']}: {'; '.join(a['details'])}"
    return "artifact not in the report"


class Bench:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.base = work / "base"
        self.probes: list[Probe] = []
        self.count = 0

    def copy(self) -> Path:
        self.count += 1
        dest = self.work / f"probe{self.count:02d}"
        shutil.copytree(self.base, dest, symlinks=True)
        return dest

    def probe(self, group: str, name: str, expected: str, fn: Callable[[Probe], None]) -> None:
        p = Probe(group, name, expected)
        t0 = time.perf_counter()
        try:
            fn(p)
        except Exception as exc:  # a probe that crashes did not hold
            p.held, p.evidence = False, f"probe crashed: {type(exc).__name__}: {exc}"
        p.seconds = time.perf_counter() - t0
        self.probes.append(p)
        print(f"{'held  ' if p.held else 'FAILED'} {group}: {name} ({p.seconds:.1f} s) -- {p.evidence}", flush=True)

    # ---- the experiment every probe starts from -------------------------------------------------
    def build(self) -> float:
        self.base.mkdir(parents=True)
        (self.base / "rel.yaml").write_text(yaml.safe_dump(CONFIG))
        t0 = time.perf_counter()
        proc = run([*SNAKEMAKE, "-d", str(self.base), "--configfile", "rel.yaml", "--cores", "2", "all"],
                   self.base, timeout=3600)
        if proc.returncode != 0:
            raise SystemExit("building the experiment failed:\n" + (proc.stdout + proc.stderr)[-4000:])
        return time.perf_counter() - t0

    # ---- injection ------------------------------------------------------------------------------
    def injection(self, kind: str) -> Callable[[Probe], None]:
        def fn(p: Probe) -> None:
            d = self.work / f"inject_{kind}"
            d.mkdir()
            cfg = json.loads(json.dumps(CONFIG))
            if kind == "output_dir":
                cfg["output_dir"] = "results/inj;touch pwned;#"
            elif kind == "run":
                cfg["runs"]["x;touch pwned;#"] = {"variant": "indep"}
            elif kind == "dataset":
                cfg["datasets"]["d;touch pwned;#"] = cfg["datasets"]["builtin"]
                cfg["defaults"]["dataset"] = "d;touch pwned;#"
            else:
                cfg["output_dir"] = "results/with space"
            (d / "c.yaml").write_text(yaml.safe_dump(cfg))
            proc = run([*SNAKEMAKE, "-d", str(d), "--configfile", "c.yaml", "--cores", "1", "all"], d, timeout=600)
            lines = error_lines(proc, "pathmoe: bad config:")
            pwned = (d / "pwned").exists() or any(d.rglob("pwned"))
            p.held = proc.returncode != 0 and len(lines) == 1 and not pwned and not (d / "results").exists()
            p.evidence = (lines[0] if lines else first_error(proc)) + ("; PAYLOAD RAN" if pwned else "")
        return fn

    def shared_report_dir(self, p: Probe) -> None:
        d = self.copy()
        other = {**CONFIG, "name": "other", "report_dir": "reports/rel"}
        (d / "other.yaml").write_text(yaml.safe_dump(other))
        proc = run([*SNAKEMAKE, "-d", str(d), "--configfile", "other.yaml", "-n", "all"], d)
        lines = error_lines(proc, "pathmoe: bad config:")
        p.held = proc.returncode != 0 and len(lines) == 1
        p.evidence = lines[0] if lines else first_error(proc)

    # ---- re-execution ---------------------------------------------------------------------------
    def planted_record(self, p: Probe) -> None:
        d = self.copy()
        victim = self.work / "planted_pwned"
        record = d / "results/rel/results/records.csv.prov.json"
        rec = json.loads(record.read_text())
        rec["command"]["argv"] = ["sh", "-c", f"touch {victim}"]
        record.write_text(json.dumps(rec))
        proc = audit(d, "--reexec", "--reexec-skip-stage", "data")
        p.held = proc.returncode == 1 and not victim.exists() and audit_problem(d, "results/records.csv").startswith("refused")
        p.evidence = f"exit {proc.returncode}; {audit_problem(d, 'results/records.csv')}"

    def foreign_owner(self, p: Probe) -> None:
        if os.getuid() != 0:
            p.held, p.evidence = False, "not run: needs root to hand the copy to another user (chown)"
            return
        d = self.copy()
        nobody = 65534
        for root, dirs, files in os.walk(d):
            for name in dirs + files:
                os.lchown(os.path.join(root, name), nobody, nobody)
        refused = audit(d, "--reexec", "--reexec-skip-stage", "data")
        summary = json.loads((d / "audit.json").read_text())["summary"]
        trusted = audit(d, "--reexec", "--trust", "--reexec-skip-stage", "data")
        trusted_summary = json.loads((d / "audit.json").read_text())["summary"]
        p.held = refused.returncode == 1 and "refused" in summary and trusted.returncode == 0 \
            and "refused" not in trusted_summary
        p.evidence = f"without --trust: exit {refused.returncode} {summary}; with --trust: exit {trusted.returncode} {trusted_summary}"

    # ---- tampering ------------------------------------------------------------------------------
    def truncated_shard(self, p: Probe) -> None:
        d = self.copy()
        shard = d / "results/rel/data/builtin/shards/train_00000.bin"
        shard.write_bytes(shard.read_bytes()[:-100])
        proc = audit(d)
        problem = audit_problem(d, "shards/index.json")
        p.held = proc.returncode == 1 and problem.startswith("tampered: shard train_00000.bin")
        p.evidence = f"exit {proc.returncode}; {problem}"

    def export_flip(self, where: str) -> Callable[[Probe], None]:
        def fn(p: Probe) -> None:
            d = self.copy()
            ckpt = d / RUN / "hf/step_10"
            weights = ckpt / "model.safetensors"
            flip(weights, weight_offset(weights) if where == "weight" else 20)
            proc = audit(d)
            problem = audit_problem(d, "hf/step_10")
            shards = "results/rel/data/builtin/shards"
            evals = run([*PATHMOE, "eval", "ppl", "--checkpoint", f"{RUN}/hf/step_10", "--shards", shards,
                         "--tokens", "256", "--device", "cpu"], d)
            traces = run([*PATHMOE, "analyze", "traces", "--checkpoint", f"{RUN}/hf/step_10", "--shards", shards,
                          "--tokens", "256", "--seq-len", "64", "--device", "cpu", "--out", "t.npz"], d)
            eval_err, trace_err = one_line_error(evals, "eval"), one_line_error(traces, "analyze")
            p.held = (proc.returncode == 1 and problem.startswith("tampered")
                      and evals.returncode == 2 and eval_err is not None and "val_ppl" not in evals.stdout
                      and traces.returncode == 2 and trace_err is not None and not (d / "t.npz").exists())
            p.evidence = (f"audit: {problem.split(' (')[0]}; eval ppl exit {evals.returncode}: {eval_err}; "
                          f"analyze traces exit {traces.returncode}: {trace_err}")
        return fn

    def checkpoint_flip(self, p: Probe) -> None:
        d = self.copy()
        tag = d / RUN / "ds_ckpt/step_5"
        target = sorted(f for f in tag.rglob("*") if f.is_file())[0]
        flip(target, target.stat().st_size // 2)
        proc = audit(d)
        problem = audit_problem(d, "ds_ckpt/step_5")
        (d / RUN / "train_summary.json").unlink()  # interrupted: resume would load step_5
        resume = run([*PATHMOE, "train", "--run-config", f"{RUN}/train_config.json"], d, env=_single_process_env())
        err = one_line_error(resume, "train")
        p.held = proc.returncode == 1 and problem.startswith("tampered") and resume.returncode == 2 \
            and err is not None and "does not match its record" in err
        p.evidence = f"audit: {problem.split(' (')[0]}; resume exit {resume.returncode}: {err}"

    # ---- interrupted runs -----------------------------------------------------------------------
    def marker(self, breakage: str) -> Callable[[Probe], None]:
        def fn(p: Probe) -> None:
            d = self.copy()
            run_dir = d / RUN
            (run_dir / "train_summary.json").unlink()
            marker = run_dir / "ds_ckpt/complete.json"
            if breakage == "deleted":
                marker.unlink()
            else:
                marker.write_text(json.dumps({"tags": ["step_5", "step_7"]}))
            before = sorted(str(f.relative_to(run_dir)) for f in run_dir.rglob("*"))
            proc = run([*PATHMOE, "train", "--run-config", f"{RUN}/train_config.json"], d, env=_single_process_env())
            err = one_line_error(proc, "train")
            after = sorted(str(f.relative_to(run_dir)) for f in run_dir.rglob("*"))
            p.held = proc.returncode == 2 and err is not None and "--restart" in err and RUN in err \
                and before == after
            p.evidence = f"exit {proc.returncode}, run dir untouched: {before == after}; {err or first_error(proc)}"
        return fn

    # ---- late failures --------------------------------------------------------------------------
    def late(self, override: dict, key: str) -> Callable[[Probe], None]:
        def fn(p: Probe) -> None:
            d = self.work / f"late_{self.count}_{key.replace('.', '_')}"
            self.count += 1
            d.mkdir()
            cfg = json.loads(json.dumps(CONFIG))
            for section, value in override.items():
                if isinstance(value, dict) and isinstance(cfg.get(section), dict):
                    cfg[section] = {**cfg[section], **value}
                else:
                    cfg[section] = value
            (d / "c.yaml").write_text(yaml.dump(cfg))
            t0 = time.perf_counter()
            proc = run([*SNAKEMAKE, "-d", str(d), "--configfile", "c.yaml", "-n", "all"], d)
            lines = error_lines(proc, "pathmoe: bad config:")
            p.held = proc.returncode != 0 and len(lines) == 1 and key in lines[0]
            p.evidence = f"at parse ({time.perf_counter() - t0:.1f} s): " + (lines[0] if lines else first_error(proc))
        return fn

    def clean_baseline(self, p: Probe) -> None:
        d = self.copy()
        proc = audit(d, "--reexec", "--reexec-skip-stage", "data")
        summary = json.loads((d / "audit.json").read_text())["summary"]
        p.held = proc.returncode == 0 and set(summary) <= {"ok", "reexec-ok"} and summary.get("reexec-ok", 0) > 0
        p.evidence = f"exit {proc.returncode}; {summary}"


def _single_process_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def markdown(bench: Bench, command: str, build_s: float, total_s: float) -> str:
    held = sum(p.held for p in bench.probes)
    lines = ["# Reliability probes", "",
             f"Command: `{command}`", "",
             f"Machine: {platform.platform()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}; "
             f"run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
             f"Building the probed experiment (Snakemake, one DeepSpeed run on CPU, eval, analyses, 2 tables): "
             f"{build_s:.0f} s; all probes: {total_s:.0f} s.", "",
             f"**{held}/{len(bench.probes)} probes held.** Each destructive probe ran on a fresh copy of the built "
             "experiment. What is checked and trusted: docs/audit.md.", "",
             "| group | probe | expected | result | evidence |", "|---|---|---|---|---|"]
    for p in bench.probes:
        ev = p.evidence.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {p.group} | {p.name} | {p.expected} | {'held' if p.held else '**FAILED**'} | {ev} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default=None, help="scratch directory (default: a temporary one, removed)")
    parser.add_argument("--out", default=None, help="also write the Markdown record here")
    args = parser.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pathmoe-reliability-") as tmp:
        work = Path(args.work_dir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        os.chmod(work, 0o755)
        bench = Bench(work)
        build_s = bench.build()
        print(f"built the probed experiment in {build_s:.0f} s", flush=True)
        b = bench
        b.probe("baseline", "untouched experiment, `audit verify --reexec`", "exit 0, only ok / reexec-ok", b.clean_baseline)
        for kind, what in (("output_dir", "`output_dir: \"results/inj;touch pwned;#\"`"),
                           ("run", "run name `x;touch pwned;#`"), ("dataset", "dataset name `d;touch pwned;#`"),
                           ("space", "`output_dir: \"results/with space\"`")):
            b.probe("injection", what, "rejected at parse time in one line; nothing runs", b.injection(kind))
        b.probe("injection", "second experiment with the first one's report_dir", "refused at parse time",
                b.shared_report_dir)
        b.probe("re-execution", "planted record `[\"sh\", \"-c\", \"touch ...\"]`", "refused, exit 1, nothing runs",
                b.planted_record)
        b.probe("re-execution", "directory owned by another user (chown nobody)", "refused without --trust; ok with it",
                b.foreign_owner)
        b.probe("tampering", "truncated token shard", "index.json tampered, naming the shard", b.truncated_shard)
        b.probe("tampering", "one flipped weight byte in model.safetensors",
                "tampered; eval and analysis: one-line error, no number", b.export_flip("weight"))
        b.probe("tampering", "one flipped safetensors header byte",
                "tampered; eval and analysis: one-line error", b.export_flip("header"))
        b.probe("tampering", "one flipped byte in a DeepSpeed checkpoint", "tampered; resume refuses in one line",
                b.checkpoint_flip)
        b.probe("interrupted run", "complete.json deleted", "one-line error naming the run dir and --restart; "
                "nothing discarded", b.marker("deleted"))
        b.probe("interrupted run", "complete.json lists a tag that does not exist", "as above",
                b.marker("inconsistent"))
        for override, key, what in (
                ({"train": {"lr": float("nan")}}, "train.lr", "`lr: .nan`"),
                ({"train": {"lr": float("inf")}}, "train.lr", "`lr: .inf`"),
                ({"output_dir": ""}, "output_dir", "`output_dir: \"\"`"),
                ({"train": {"warmup_steps": 50}}, "warmup_steps", "`warmup_steps` > `steps`"),
                ({"eval": {"tasks": ["offline_mc", "hellaswagg"]}}, "eval.tasks", "unknown eval task"),
                ({"eval": {"num_fewshot": {"triviaqa": 5}}}, "eval.num_fewshot", "`num_fewshot` for an unlisted task"),
                ({"scales": {"tiny": {"model": {**CONFIG["scales"]["tiny"]["model"], "dispatch": "deepspeed",
                                                "expert_parallel_size": 2}}}}, "expert_parallel_size",
                 "expert-parallel size the process count cannot divide")):
            b.probe("late failure", what, "one-line error naming the key at parse time", b.late(override, key))
        total_s = time.perf_counter() - t0
        command = "python benchmarks/reliability.py" + (f" --out {shlex.quote(args.out)}" if args.out else "")
        text = markdown(bench, command, build_s, total_s)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0 if all(p.held for p in bench.probes) else 1


if __name__ == "__main__":
    sys.exit(main())
