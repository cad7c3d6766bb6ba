# Config loading and validation (before any job starts) and the helpers every rule file uses.
import json
import re
import sys
from pathlib import Path

from pathmoe.config import ConfigError, check_report_owner, load_experiment

# The embedded default applies only when no --configfile names an experiment: Snakemake would
# otherwise merge the two (a paper config would inherit the default's runs). `--config` values
# override either. `plan` is a command-line switch, not part of the experiment.
PLAN = config.pop("plan", False)
try:
    # the first --configfile names the experiment: its hub revision lock lives beside it (pathmoe.hub)
    EXP = (load_experiment(config, config_file=workflow.configfiles[0] if workflow.configfiles else None)
           if "name" in config else load_experiment(Path(workflow.basedir) / "configs" / "default.yaml", config))
    check_report_owner(EXP)  # another experiment's reports are never overwritten
except ConfigError as exc:
    sys.exit(f"pathmoe: bad config: {exc}")

OUT = str(EXP.output_dir)
REPORTS = str(EXP.report_dir)
RUNS = list(EXP.runs)
# Runs with identical training specs share one training (pathmoe.config): only these train.
TRAINED_RUNS = EXP.trained_runs
DATASETS = list(EXP.datasets)

wildcard_constraints:
    run="|".join(map(re.escape, RUNS)),
    dataset="|".join(map(re.escape, DATASETS)),

if PLAN:
    from pathmoe.cli import plan_text

    print(plan_text(EXP), file=sys.stderr)


def run_dataset(wildcards):
    return EXP.runs[wildcards.run].dataset


def stage_gpus(run, stage):
    """GPUs of one `stage` job of `run`: gpus per node x nodes (the slurm plugin's --gpus)."""
    res = EXP.runs[run].resources[stage]
    return res["gpus"] * res["nodes"]


def stage_resource(stage, key):
    """One SLURM resource of `stage` (train/eval/analysis) for a run, from its scale's config.
    pathmoe.config resolves every stage's gpus, nodes, CPU count, mem_mb and runtime
    (RESOURCE_DEFAULTS, the one set of defaults). `gpu` is the job's total (stage_gpus)."""

    def resource(wildcards):
        if key == "gpu":
            return stage_gpus(wildcards.run, stage)
        return EXP.runs[wildcards.run].resources[stage][key]

    return resource


# Shell commands: every value goes through a `{...:q}` field (quoted by Snakemake), never
# pasted into the command string; tests/test_integrity.py checks every rule for it.
WRITE_SPEC = "printf '%s\\n' {params.spec:q} > {output:q}.tmp && mv {output:q}.tmp {output:q}"


def recorded(cmd, deterministic=False, reads=""):
    """Wrap a stage command so its outputs get provenance records (pathmoe audit record).
    `reads`: a quoted field (`{params.reads:q}`) naming files the command reads besides its
    rule inputs (the data files behind a data stamp), hashed into the record and staged when the
    audit re-executes the job."""
    flag = " --deterministic" if deterministic else ""
    extra = f" {reads}" if reads else ""
    return f"pathmoe audit record{flag} --inputs {{input:q}}{extra} --outputs {{output:q}} -- {cmd}"
