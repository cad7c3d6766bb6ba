"""The cluster path on a real scheduler: a one-node SLURM on localhost (tests/slurm/start_cluster.sh,
Debian's slurm-wlm + munge, installed and started when missing) runs the reduced DAG of
tests/configs/slurm.yaml through `--profile slurm` to completion, and `pathmoe audit verify`
passes on it. On the way:

- `two` trains with 2 ranks (srun, gloo, no GPU) and matches the 1-rank `one` within float tolerance;
- `limited` runs under a 1-minute job time limit: it checkpoints stop_margin_s before the limit (one
  step per job here), requeues itself until done, its Slurm log is appended to across the requeues,
  and it equals an uninterrupted training bit for bit;
- `one` is requeued mid-training with `scontrol requeue` (SIGTERM, checkpoint, restart) and equals
  the same uninterrupted training bit for bit.

The command is what a user types, from a scratch directory (so -s/--profile name the checkout),
plus the settings this cluster needs and a real cluster user would also set: `--slurm-status-command
squeue` (no accounting database, hence no sacct), a 2-second first status check (the plugin's
default waits 40 s), and `--slurm-keep-successful-logs` (to read the logs afterwards).
Deselect with `-m "not slurm"`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slurm
TIMING_KEYS = {"tokens_per_s", "peak_mem_gib"}
REQUEUE_AT_STEP = 30  # `one` is requeued once its log shows this step


def metrics(path: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING_KEYS}
            for line in path.read_text().splitlines() if line.strip()]


def job_id_of(run: str) -> str | None:
    """SLURM job id of `run`'s train job (the plugin puts rule and wildcards in the job comment)."""
    out = subprocess.run(["squeue", "-h", "-o", "%i|%k|%T"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        job, comment, state = line.split("|")
        if "train" in comment and run in comment and state == "RUNNING":
            return job
    return None


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    res = subprocess.run(["bash", str(ROOT / "tests/slurm/start_cluster.sh")], capture_output=True, text=True,
                         timeout=900)
    assert res.returncode == 0, f"could not start the local SLURM: {res.stderr[-2000:]}"
    work = tmp_path_factory.mktemp("slurm")
    cmd = (f"snakemake -s {shlex.quote(str(ROOT / 'Snakefile'))} --profile {shlex.quote(str(ROOT / 'slurm'))} all"
           f" --configfile={shlex.quote(str(ROOT / 'tests/configs/slurm.yaml'))}"
           " --slurm-status-command squeue --slurm-init-seconds-before-status-checks 2 --slurm-keep-successful-logs")
    log = open(work / "snakemake.log", "w")
    proc = subprocess.Popen(cmd, shell=True, cwd=work, stdout=log, stderr=subprocess.STDOUT)
    requeued, deadline = None, time.monotonic() + 1200
    one_log = work / "results/slurm/runs/one_s0/metrics.jsonl"
    while proc.poll() is None:
        assert time.monotonic() < deadline, "the SLURM DAG did not finish in 20 minutes"
        if requeued is None and one_log.exists() and len(one_log.read_text().splitlines()) >= REQUEUE_AT_STEP:
            requeued = job_id_of("one_s0")
            if requeued:
                subprocess.run(["scontrol", "requeue", requeued], check=True)
        time.sleep(0.5)
    log.close()
    out = (work / "snakemake.log").read_text()
    assert proc.returncode == 0, out[-5000:]
    assert requeued, "the train job of one_s0 was never seen running to requeue it"
    return work


def uninterrupted(workdir: Path, run: str, tmp_path_factory) -> list[dict]:
    """`run`'s training, uninterrupted, in this process (the same spec, another run directory)."""
    from pathmoe.train import train

    rc = json.loads((workdir / f"results/slurm/runs/{run}/train_config.json").read_text())
    run_dir = tmp_path_factory.mktemp("reference") / run
    rc["run_dir"] = str(run_dir)
    rc["data_dir"] = str(workdir / rc["data_dir"])
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    train(rc)
    return metrics(run_dir / "metrics.jsonl")


def test_dag_completes_and_audit_verifies(workdir):
    res = subprocess.run([sys.executable, "-m", "pathmoe.cli", "audit", "verify", "results/slurm",
                          "results/slurm/reports"], cwd=workdir, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    assert (workdir / "results/slurm/reports/tables/table5.tex").is_file()
    out = (workdir / "snakemake.log").read_text()
    # CPU-only jobs go to the CPU partition (this cluster's GPU partition has no GPUs either)
    assert "Auto-selected partition 'cpu' for job data_build_tokenizer_fetch_documents_tokenize" in out
    assert "Auto-selected partition 'gpu'" not in out
    # sbatch ran once for the dataset's data group and once per train and eval job (a requeue keeps
    # the job id); the report's tiny jobs ran on the submit host
    assert len(re.findall(r"has been submitted with SLURM jobid", out)) == 1 + 3 + 3
    assert re.search(r"^localrule table_plain:", out, re.M) and re.search(r"^localrule collect_records:", out, re.M)


def test_two_ranks_match_one_rank(workdir):
    runs = workdir / "results/slurm/runs"
    assert json.loads((runs / "two_s0/train_summary.json").read_text())["world_size"] == 2
    one, two = metrics(runs / "one_s0/metrics.jsonl"), metrics(runs / "two_s0/metrics.jsonl")
    assert [r["step"] for r in one] == [r["step"] for r in two] == list(range(1, 121))
    for a, b in zip(one, two):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-5), (a["step"], a["loss"], b["loss"])


def test_time_limited_run_requeues_itself_and_equals_uninterrupted(workdir, tmp_path_factory):
    run = workdir / "results/slurm/runs/limited_s0"
    log = (run / "train.log").read_text()
    stops = re.findall(r"training stopped at step (\d+) \(time limit near\)", log)
    assert stops == ["1", "2"], log[-3000:]  # three jobs of one step each
    assert len(re.findall(r"requeued SLURM job \d+", log)) == 2, log[-3000:]
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["resumed_from"] == 2 and summary["steps"] == 3
    assert metrics(run / "metrics.jsonl") == uninterrupted(workdir, "limited_s0", tmp_path_factory)  # bit for bit
    # the job's Slurm log survived every requeue (--open-mode=append): one Snakemake header per start
    slurm_logs = list((workdir / ".snakemake/slurm_logs/rule_train/limited_s0").glob("*.log"))
    assert len(slurm_logs) == 1
    assert slurm_logs[0].read_text().count("Workflow ID:") >= 2 * (len(stops) + 1)  # submit + job step per start


def test_scontrol_requeue_resumes_bit_exact(workdir, tmp_path_factory):
    run = workdir / "results/slurm/runs/one_s0"
    log = (run / "train.log").read_text()
    stopped = re.findall(r"training stopped at step (\d+) \(SIGTERM\)", log)
    assert len(stopped) == 1, log[-3000:]
    assert int(stopped[0]) >= REQUEUE_AT_STEP - 1
    assert json.loads((run / "train_summary.json").read_text())["resumed_from"] == int(stopped[0])
    assert metrics(run / "metrics.jsonl") == uninterrupted(workdir, "one_s0", tmp_path_factory)
