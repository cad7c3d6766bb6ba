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
    init_export = EXP.init_checkpoint(wildcards.run)
    if init_export is not None:  # init_from.checkpoint: an HF export the run starts from
        inputs["init"] = [f"{init_export}/config.json", f"{init_export}/model.safetensors"]
    return inputs


def train_gpus(wildcards):
    return stage_gpus(wildcards.run, "train")


def launcher(wildcards):
    """`srun` when the run spans several GPUs (one process per GPU), else nothing. Across nodes,
    every rank must agree on the rendezvous host: the allocation's first node."""
    if train_gpus(wildcards) <= 1:
        return ""
    if EXP.runs[wildcards.run].resources["train"]["nodes"] > 1:
        return 'env MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)" srun'
    return "srun"


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
    threads: lambda wc: EXP.runs[wc.run].train.get("threads") or 1
    # For the slurm executor plugin (tests/test_dag.py builds the sbatch line from these): a
    # multi-GPU run is an MPI-style job (`mpi`), one srun task per GPU (`tasks`, `tasks_per_gpu`);
    # None leaves a resource unset (single-GPU and CPU runs).
    resources:
        gpu=train_gpus,
        nodes=stage_resource("train", "nodes"),
        tasks=lambda wc: train_gpus(wc) if launcher(wc) else None,
        tasks_per_gpu=lambda wc: 1 if train_gpus(wc) else None,
        cpus_per_gpu=stage_resource("train", "cpus_per_gpu"),
        mem_mb=stage_resource("train", "mem_mb"),
        runtime=stage_resource("train", "runtime"),
        mpi=lambda wc: "srun" if launcher(wc) else None,
    log:
        f"{OUT}/runs/{{run}}/train.log",
    shell:
        # params.launcher is a fixed snippet built above from code, never from config values
        recorded("{params.launcher} pathmoe train --run-config {input.cfg:q}") + " > {log:q} 2>&1"
