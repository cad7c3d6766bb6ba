"""The Snakemake DAG: dry runs plan the right jobs per artifact, fast, and bad configs fail early."""

import re
import subprocess
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def dry_run(*args: str) -> tuple[dict[str, int], str, float]:
    start = time.perf_counter()
    # --forceall: count every job an artifact needs, whatever this checkout has already built
    res = subprocess.run([*SNAKEMAKE, "-n", "--forceall", *args, "--quiet", "rules"], cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", out, re.M)}
    return counts, out, elapsed


def test_default_config_plans_every_artifact():
    counts, _, _ = dry_run("all")
    assert counts["train"] == 27 and counts["eval"] == 27 and counts["run_config"] == 27
    assert counts["tokenize"] == 2  # built-in corpus + its DCLM-Pro stand-in
    assert counts["table_with_reference"] == 7 and counts["table_plain"] == 2  # tables 1-9
    assert counts["figure"] == 7  # figs 3, 4, 5, 6a, 6b, 7, 8
    assert counts["traces"] == 2 and counts["analyze_traces"] == 8 and counts["robustness"] == 2
    assert counts["document"] == 1


def test_one_table_needs_only_its_runs(tmp_path):
    counts, _, _ = dry_run("reports/tables/table1.tex")
    assert counts["train"] == 9 and counts["eval"] == 9  # the 9 systems of Table 1
    assert "figure" not in counts and "traces" not in counts
    counts, _, _ = dry_run("reports/tables/table3.tex")
    assert counts["train"] == 5  # PathB8 (source of the early paths) + top-10/100/500/all continuations
    counts, _, _ = dry_run("reports/tables/table4.tex")
    assert counts["train"] == 2 and counts["analyze_traces"] == 2 and "robustness" not in counts


def test_paper_config_plans_whole_reproduction_fast():
    counts, _, elapsed = dry_run("all", "--configfile", "configs/paper-0.9b.yaml")
    assert counts["train"] == 29  # Tables 1, 2, 3, 6, 7, 8 and Figs 3, 6
    assert counts["tokenize"] == 2  # FineWeb and DCLM-Pro
    assert elapsed < 10, f"planning took {elapsed:.1f} s"


def test_slurm_profile_dry_run():
    counts, out, _ = dry_run("reports/tables/table1.tex", "--profile", "slurm", "--configfile", "configs/paper-0.9b.yaml")
    assert counts["train"] == 9


def test_bad_config_fails_before_any_job(tmp_path):
    res = subprocess.run([*SNAKEMAKE, "-n", "all", "--config", "seeds=[0]", "runs={}"], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode != 0
    res = subprocess.run([*SNAKEMAKE, "-n", "all", "--config", "train={'lr': -1}"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode != 0
    assert "pathmoe: bad config: config key train.lr" in res.stderr + res.stdout


def test_dry_run_prints_gpu_hour_estimate():
    res = subprocess.run([*SNAKEMAKE, "-n", "all", "--configfile", "configs/paper-0.9b.yaml", "--config", "plan=1"],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout + res.stderr
    assert "GPU-hour estimate" in out and "indep_s0" in out
    # the plan's total line (tokens, GPU-hours), not the job-stats table's "total <jobs>"
    total = [line for line in out.splitlines() if line.startswith("total") and len(line.split()) == 3]
    assert total and float(total[0].split()[-1]) > 1000  # the paper's runs are thousands of GPU-hours
