# Config loading and validation (before any job starts) and the helpers every rule file uses.
import json
import re
import shlex
import sys
from pathlib import Path

from pathmoe.config import ConfigError, load_experiment

# The embedded default applies only when no --configfile names an experiment: Snakemake would
# otherwise merge the two (a paper config would inherit the default's runs). `--config` values
# override either. `plan` is a command-line switch, not part of the experiment.
PLAN = config.pop("plan", False)
try:
    EXP = (load_experiment(config) if "name" in config
           else load_experiment(Path(workflow.basedir) / "configs" / "default.yaml", config))
except ConfigError as exc:
    sys.exit(f"pathmoe: bad config: {exc}")

OUT = str(EXP.output_dir)
REPORTS = str(EXP.report_dir)
RUNS = list(EXP.runs)
DATASETS = list(EXP.datasets)

wildcard_constraints:
    run="|".join(map(re.escape, RUNS)) if RUNS else "^$",
    dataset="|".join(map(re.escape, DATASETS)),

if PLAN:
    from pathmoe.cost import estimate_gpu_hours, format_plan

    print(format_plan(estimate_gpu_hours(EXP, EXP.cost["gpu_flops"], EXP.cost["mfu"]),
                      EXP.cost["gpu_flops"], EXP.cost["mfu"]), file=sys.stderr)


def run_dataset(wildcards):
    return EXP.runs[wildcards.run].dataset


def stage_resource(stage, key, default):
    """One SLURM resource of `stage` (train/eval/analysis) for a run, from its scale's config.
    `gpu` is the job's total: gpus per node x nodes (the slurm plugin's --gpus)."""

    def resource(wildcards):
        res = EXP.runs[wildcards.run].resources.get(stage, {})
        if key == "gpu":
            return res.get("gpus", 0) * res.get("nodes", 1)
        return res.get(key, default)

    return resource


def recorded(cmd, deterministic=False):
    """Wrap a stage command so its outputs get provenance records (pathmoe audit record)."""
    flag = " --deterministic" if deterministic else ""
    return f"pathmoe audit record{flag} --inputs {{input}} --outputs {{output}} -- {cmd}"
