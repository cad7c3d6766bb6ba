# Training: one job per run (variant x scale x dataset x seed), through DeepSpeed.

localrules: run_config

from pathmoe.eval.metrics import OFFLINE_TASKS


rule run_config:
    """The resolved run spec (docs/ARCHITECTURE.md); rewritten only when the run's config changes,
    so editing one run's config retrains that run and nothing else."""
    output:
        f"{OUT}/runs/{{run}}/run_config.json",
    params:
        spec=lambda wc: json.dumps(EXP.run_config(wc.run), indent=2, sort_keys=True),
    shell:
        # plain shell, not a `run:` block: a Python job would re-import the workflow (seconds each)
        "printf '%s\\n' {params.spec:q} > {output}.tmp && mv {output}.tmp {output}"


def train_inputs(wildcards):
    spec = EXP.runs[wildcards.run]
    inputs = {
        "cfg": f"{OUT}/runs/{wildcards.run}/run_config.json",
        "shards": f"{OUT}/data/{spec.dataset}/shards/index.json",
        "tokenizer": f"{OUT}/data/{spec.dataset}/tokenizer",
    }
    source = EXP.source_run(wildcards.run)
    if source is not None:
        inputs["source"] = f"{OUT}/runs/{source}/train_summary.json"
    return inputs


def launcher(wildcards):
    """`srun` when the run spans several GPUs (one process per GPU), else nothing. Across nodes,
    every rank must agree on the rendezvous host: the allocation's first node."""
    res = EXP.runs[wildcards.run].resources.get("train", {})
    if res.get("gpus", 0) * res.get("nodes", 1) <= 1:
        return ""
    if res.get("nodes", 1) > 1:
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
    params:
        launcher=launcher,
    threads: lambda wc: EXP.runs[wc.run].train.get("threads") or 1
    resources:
        gpu=stage_resource("train", "gpu", 0),
        nodes=stage_resource("train", "nodes", 1),
        tasks_per_gpu=lambda wc: 1 if stage_resource("train", "gpu", 0)(wc) else 0,
        cpus_per_gpu=stage_resource("train", "cpus_per_gpu", 8),
        mem_mb=stage_resource("train", "mem_mb", 4000),
        runtime=stage_resource("train", "runtime", 60),
        mpi=lambda wc: "srun" if launcher(wc) else "",
    log:
        f"{OUT}/runs/{{run}}/train.log",
    shell:
        recorded("{params.launcher} pathmoe train --run-config {input.cfg}") + " > {log} 2>&1"
