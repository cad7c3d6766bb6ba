# Evaluation: every exported checkpoint of a run through lm-eval + validation perplexity,
# model selection (best average of the final 5), and the one results table every report reads.

from pathmoe.eval.metrics import OFFLINE_TASKS
from pathmoe.eval.task_dirs import task_dir_files


def eval_inputs(wildcards):
    spec = EXP.runs[wildcards.run]
    inputs = {
        "cfg": f"{OUT}/runs/{wildcards.run}/run_config.json",
        # the checkpoints of the run that trains it (itself unless its training is shared)
        "summary": f"{OUT}/runs/{EXP.train_run(wildcards.run)}/train_summary.json",
        "shards": f"{OUT}/data/{spec.dataset}/shards/index.json",
    }
    if set(OFFLINE_TASKS) & set(spec.eval["tasks"] + spec.eval["curve_tasks"]):
        # offline tasks are built (deterministically) from the held-out documents (raw/val.jsonl,
        # which the raw/ stamp stands for) and the tokenizer, inside the job
        inputs["raw"] = f"{OUT}/data/{spec.dataset}/raw/manifest.json"
        inputs["tokenizer"] = f"{OUT}/data/{spec.dataset}/tokenizer"
    # eval.task_dirs: every file of the task folders, so editing a task or its data re-evaluates
    inputs["task_files"] = task_dir_files(spec.eval["task_dirs"])
    return inputs


rule eval:
    input:
        unpack(eval_inputs),
    output:
        records=f"{OUT}/runs/{{run}}/eval/records.csv",
        selected=f"{OUT}/runs/{{run}}/eval/selected.json",
    resources:
        gpu=stage_resource("eval", "gpu"),
        cpus_per_gpu=stage_resource("eval", "cpus"),
        mem_mb=stage_resource("eval", "mem_mb"),
        runtime=stage_resource("eval", "runtime"),
    log:
        f"{OUT}/runs/{{run}}/eval.log",
    shell:
        recorded("pathmoe eval run --run-config {input.cfg:q}") + " > {log:q} 2>&1"


# concatenating the runs' small CSVs: on the submit host, not one sbatch job
localrules: collect_records


rule collect_records:
    """All runs' eval records in one tidy table (results/records.csv)."""
    input:
        expand(f"{OUT}/runs/{{run}}/eval/records.csv", run=RUNS),
    output:
        f"{OUT}/results/records.csv",
    params:
        run_dirs=[f"{OUT}/runs/{run}" for run in RUNS],
    shell:
        recorded("pathmoe eval collect --runs {params.run_dirs:q} --out {output:q}", deterministic=True)
