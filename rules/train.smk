# Training: one job per run (variant x scale x dataset x seed), through DeepSpeed.

localrules: run_config, train_config


# run_config / train_config: plain shell (WRITE_SPEC, rules/common.smk), not a `run:` block: a
# Python job would re-import the workflow (seconds each)


rule run_config:
    """The resolved run spec (docs/ARCHITECTURE.md) that eval and the analyses read; rewritten only
    when the run's config changes, so an edit reruns that run's stages and nothing else."""
    output:
        f"{OUT}/runs/{{run}}/run_config.json",
    params:
        spec=lambda wc: json.dumps(EXP.run_config(wc.run), indent=2, sort_keys=True),
    shell:
        WRITE_SPEC


rule train_config:
    """The run spec minus eval/analysis settings (Experiment.train_config): the train job's input, so
    an eval- or analysis-only edit reruns those stages and leaves trained runs alone."""
    output:
        f"{OUT}/runs/{{run}}/train_config.json",
    wildcard_constraints:
        run="|".join(map(re.escape, TRAINED_RUNS)),
    params:
        spec=lambda wc: json.dumps(EXP.train_config(wc.run), indent=2, sort_keys=True),
    shell:
        WRITE_SPEC


def train_inputs(wildcards):
    spec = EXP.runs[wildcards.run]
    inputs = {
        "cfg": f"{OUT}/runs/{wildcards.run}/train_config.json",
        "shards": f"{OUT}/data/{spec.dataset}/shards/index.json",
        "tokenizer": f"{OUT}/data/{spec.dataset}/tokenizer",
    }
    source = EXP.source_run(wildcards.run)
    if source is not None:
        inputs["source"] = f"{OUT}/runs/{source}/train_summary.json"
    return inputs


def train_gpus(wildcards):
    return stage_gpus(wildcards.run, "train")


def train_processes(wildcards):
    """Training processes of the job: one per GPU, or resources.train.tasks per node for a CPU run."""
    res = EXP.runs[wildcards.run].resources["train"]
    return (res["gpus"] or res["tasks"]) * res["nodes"]


def launcher(wildcards):
    """`srun` with the job's task layout when the run has several processes (one per GPU, or a CPU
    run's tasks), else nothing. The layout is explicit: the slurm plugin's job step clears the
    allocation's SLURM_* variables before running the command, so a bare `srun` would start one task.
    Built from validated integers only (never a config string)."""
    processes = train_processes(wildcards)
    if processes <= 1:
        return ""
    per_node = processes // EXP.runs[wildcards.run].resources["train"]["nodes"]
    return f"srun --ntasks={processes} --ntasks-per-node={per_node}"


rule train:
    """Train one run. Preempted or requeued jobs resume from the last complete DeepSpeed
    checkpoint in the run directory (only train_summary.json is the rule's output, so Snakemake
    never deletes checkpoints when it reruns an incomplete job)."""
    input:
        unpack(train_inputs),
    output:
        f"{OUT}/runs/{{run}}/train_summary.json",
    # a run sharing another's training (identical spec) has no train job: its eval reads that run's
    wildcard_constraints:
        run="|".join(map(re.escape, TRAINED_RUNS)),
    params:
        launcher=launcher,
        stop_margin=stage_resource("train", "stop_margin_s"),
        log=lambda wc: f"{OUT}/runs/{wc.run}/train.log",
    threads: lambda wc: EXP.runs[wc.run].train.get("threads") or 1
    # For the slurm executor plugin (tests/test_dag.py builds the sbatch line from these): a
    # multi-process run is an MPI-style job (`mpi`), one srun task per GPU or per CPU process
    # (`tasks`, `tasks_per_gpu`); None leaves a resource unset (single-process runs). The time
    # limit is the config's per-job `runtime`: a longer run stops stop_margin_s before it with a
    # checkpoint and requeues itself (docs/slurm.md), so the log is appended to, never truncated.
    resources:
        gpu=train_gpus,
        nodes=stage_resource("train", "nodes"),
        tasks=lambda wc: train_processes(wc) if launcher(wc) else None,
        tasks_per_gpu=lambda wc: 1 if train_gpus(wc) else None,
        cpus_per_gpu=stage_resource("train", "cpus_per_gpu"),
        mem_mb=stage_resource("train", "mem_mb"),
        runtime=stage_resource("train", "runtime"),
        mpi=lambda wc: "srun" if launcher(wc) else None,
        slurm_extra="--open-mode=append",
    shell:
        # params.launcher is a fixed snippet built above from code and validated integers. The log is
        # appended to, not a `log:` file (which Snakemake deletes when the job starts): it keeps the
        # output of every start of a requeued job, the stop and requeue notices included.
        recorded("{params.launcher} pathmoe train --run-config {input.cfg:q} --stop-margin-s {params.stop_margin:q}")
        + " >> {params.log:q} 2>&1"
