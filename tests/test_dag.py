"""The Snakemake DAG: dry runs plan the right jobs per artifact, fast, and bad configs fail early."""

import re
import resource
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace


ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def dry_run(*args: str) -> tuple[dict[str, int], str, float]:
    """Job counts, output and the CPU seconds the dry run took (CPU time: a busy CI machine does not inflate it)."""
    start = child_cpu_seconds()
    # --forceall: count every job an artifact needs, whatever this checkout has already built
    res = subprocess.run([*SNAKEMAKE, "-n", "--forceall", *args, "--quiet", "rules"], cwd=ROOT, capture_output=True, text=True)
    elapsed = child_cpu_seconds() - start
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", out, re.M)}
    return counts, out, elapsed


def test_default_config_plans_every_artifact():
    counts, _, _ = dry_run("all")
    # 27 runs, 24 trainings: pathb1 = indep_nolbl, and on 8 layers pathb8 = pathmoe, alt_pathb8 = alt_pathmoe
    assert counts["train"] == 24 and counts["eval"] == 27 and counts["run_config"] == 27
    assert counts["tokenize"] == 2  # built-in corpus + its DCLM-Pro stand-in
    assert counts["table_with_reference"] == 7 and counts["table_plain"] == 2  # tables 1-9
    assert counts["figure"] == 7  # figs 3, 4, 5, 6a, 6b, 7, 8
    assert counts["traces"] == 2 and counts["analyze_traces"] == 8 and counts["robustness"] == 2
    assert counts["document"] == 1 and counts["headlines"] == 1  # the text's headline numbers vs ours
    assert counts["training_curves"] == 27  # one figure per run group (base run with its seeds)


def test_one_table_needs_only_its_runs():
    counts, _, _ = dry_run("reports/default/tables/table1.tex")
    assert counts["train"] == 8 and counts["eval"] == 9  # the 9 systems of Table 1 (PathB8 = PathMoE on 8 layers)
    assert "figure" not in counts and "traces" not in counts
    counts, _, _ = dry_run("reports/default/tables/table3.tex")
    assert counts["train"] == 5  # PathB8 (trained as PathMoE: the source of the early paths) + 4 continuations
    counts, _, _ = dry_run("reports/default/tables/table4.tex")
    assert counts["train"] == 2 and counts["analyze_traces"] == 2 and "robustness" not in counts


def test_paper_config_plans_whole_reproduction_fast():
    counts, _, elapsed = dry_run("all", "--configfile", "configs/paper-0.9b.yaml")
    assert counts["train"] == 28 and counts["eval"] == 29  # Tables 1, 2, 3, 6, 7, 8, Figs 3, 6; PathB1 = Indep LBL 0
    assert counts["tokenize"] == 2  # FineWeb and DCLM-Pro
    assert elapsed < 10, f"planning took {elapsed:.1f} CPU s"


def test_slurm_profile_dry_run():
    counts, out, _ = dry_run("reports/paper-0.9b/tables/table1.tex", "--profile", "slurm", "--configfile", "configs/paper-0.9b.yaml")
    assert counts["train"] == 9


def slurm_jobs(*targets: str) -> list[tuple[str, dict[str, str], int, dict]]:
    """(rule, wildcards, threads, resources) of every job a dry run through the SLURM profile plans."""
    res = subprocess.run([*SNAKEMAKE, "-n", "--forceall", *targets, "--profile", "slurm",
                          "--configfile", "configs/paper-0.9b.yaml"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    jobs = []
    # members of a group job are printed indented
    for block in re.split(r"^(?= *(?:local)?rule \w+:$)", res.stdout + res.stderr, flags=re.M)[1:]:
        fields = dict(re.findall(r"^ {4,8}(\w+): (.*)$", block, re.M))
        resources = {}
        for item in fields.get("resources", "").split(", "):
            key, _, value = item.partition("=")
            resources[key] = int(value) if value.isdigit() else value
        wildcards = dict(w.split("=", 1) for w in fields["wildcards"].split(", ")) if "wildcards" in fields else {}
        jobs.append((re.match(r" *(?:local)?rule (\w+):", block).group(1), wildcards,
                     int(fields.get("threads", 1)), resources))
    return jobs


def sbatch_line(threads: int, resources: dict) -> list[str]:
    """The sbatch arguments the installed slurm executor plugin builds for a job's resources, with the
    partition it picks from the profile's slurm/partitions.yaml."""
    from snakemake_executor_plugin_slurm.partitions import get_best_partition, read_partition_file
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    class Resources(dict):
        __getattr__ = dict.__getitem__

    job = SimpleNamespace(resources=Resources(resources), threads=threads, name="job")
    logger = SimpleNamespace(info=lambda *a: None, debug=lambda *a: None, warning=lambda *a: None)
    partition = get_best_partition(read_partition_file(ROOT / "slurm/partitions.yaml"), job, logger)
    params = {"run_uuid": "uuid", "slurm_logfile": "slurm.log", "comment_str": "job", "workdir": str(ROOT),
              "account": f"-A {resources['slurm_account']}", "partition": f"-p {partition}"}
    return (get_submit_command(job, params) + set_gres_string(job)).split()


def test_slurm_submission_lines():
    """The resources the rules give SLURM jobs, through the plugin's own sbatch builder: multi-node
    training is one task per GPU and gets the config's CPUs per GPU (no cpus_per_task default may
    shadow them)."""
    jobs = slurm_jobs("results/paper-0.9b/runs/indep_16b_s0/train_summary.json",
                      "results/paper-0.9b/runs/indep_s0/eval/records.csv")
    lines = {(rule, wc.get("run", wc.get("dataset"))): sbatch_line(threads, res) for rule, wc, threads, res in jobs}
    train_16b = lines["train", "indep_16b_s0"]  # 8 GPUs x 16 nodes
    for flag in ("--nodes=16", "--ntasks=128", "--ntasks-per-gpu=1", "--cpus-per-gpu=8", "--gpus=128"):
        assert flag in train_16b, (flag, train_16b)
    assert "960000" == train_16b[train_16b.index("--mem") + 1] and "4320" == train_16b[train_16b.index("-t") + 1]
    train_09b = lines["train", "indep_s0"]  # 8 GPUs x 4 nodes
    assert {"--nodes=4", "--ntasks=32", "--cpus-per-gpu=8", "--gpus=32"} <= set(train_09b)
    evaluation = lines["eval", "indep_s0"]
    assert {"--gpus=1", "--cpus-per-gpu=8"} <= set(evaluation)
    assert "--cpus-per-task=32" in lines["tokenize", "fineweb"]  # the dataset's num_workers
    for key in (("train", "indep_16b_s0"), ("train", "indep_s0"), ("eval", "indep_s0")):
        assert lines[key][lines[key].index("-p") + 1] == "gpu", lines[key]
    assert lines["tokenize", "fineweb"][lines["tokenize", "fineweb"].index("-p") + 1] == "cpu"
    assert "--open-mode=append" in train_09b and "--open-mode=append" not in evaluation
    for key in (("train", "indep_16b_s0"), ("train", "indep_s0"), ("eval", "indep_s0")):
        assert not any(f.startswith("--cpus-per-task") for f in lines[key]), lines[key]


def test_bad_config_fails_before_any_job():
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


def test_small_replication_config_validates_and_plans_its_dag():
    """configs/small.yaml, planned with the exact command of docs/results-small.md: every system of
    the replication with 3 seeds, their analyses for the per-metric statistics, and the report."""
    import shlex

    import yaml

    from pathmoe.config import load_experiment

    exp = load_experiment(ROOT / "configs" / "small.yaml")
    bases = {"indep", "indep_nolbl", "indep_lblsum", "pathb4", "pathb4_lbl", "pathmoe"}
    assert set(exp.base_runs) == bases and all(len(runs) >= 3 for runs in exp.base_runs.values())
    lbl = {base: exp.runs[f"{base}_s0"].model.get("lbl_coef") for base in bases}
    assert lbl == {"indep": 0.01, "indep_nolbl": 0.0, "indep_lblsum": 0.01, "pathb4": 0.0, "pathb4_lbl": 0.01, "pathmoe": 0.0}
    assert exp.runs["pathmoe_s0"].model["block_size"] == exp.runs["pathmoe_s0"].model["n_layers"]
    assert exp.runs["indep_lblsum_s0"].model["lbl_reduction"] == "sum"
    ev = exp.runs["indep_s0"].eval
    assert ev["offline_examples"] >= 1000 and ev["ppl_tokens"] >= 100_000
    assert exp.trained_runs == list(exp.runs)  # no two runs share a training here
    assert exp.report.stats["reference"] == "indep"
    # the page's command, planned as a dry run
    page = (ROOT / "docs" / "results-small.md").read_text()
    command = next(line.strip() for line in page.splitlines() if line.strip().startswith("snakemake --configfile configs/small.yaml"))
    argv = shlex.split(command)
    counts, _, elapsed = dry_run(*argv[1:])
    assert counts["train"] == 18 and counts["eval"] == 18 and counts["tokenize"] == 1
    assert counts["traces"] == 18 and counts["robustness"] == 18 and counts["analyze_traces"] == 18 * 3
    assert counts["stats"] == 1 and counts["headlines"] == 1 and counts["document"] == 1
    assert counts["table_with_reference"] == 3 and counts["figure"] == 3  # Tables 1, 4, 6; Figs 4, 7, 8
    assert yaml.safe_load((ROOT / "configs" / "small.yaml").read_text())["report_dir"] == "reports/small"
