# Path analyses of each run's selected checkpoint on a fixed held-out token set (Tables 3-4,
# Figures 4, 5, 7, 8). Routing traces are collected once; every analysis reads them.

from pathmoe.analysis.suite import TRACE_ANALYSES

# `top-paths` has no rule: nothing in the DAG reads it (Table 3's paths are each restricted run's
# own restricted_paths.json); `pathmoe analyze top-paths` / `all` still write it on request.
RULE_ANALYSES = [kind for kind in TRACE_ANALYSES if kind != "top-paths"]


def selected_checkpoint(selected_json):
    """Shell snippet printing the checkpoint directory that model selection chose (`selected_json` is
    a quoted `{...:q}` field; the command substitution's output is quoted as one word)."""
    return f'"$(pathmoe config get {selected_json} checkpoint)"'


rule traces:
    input:
        selected=f"{OUT}/runs/{{run}}/eval/selected.json",
        shards=lambda wc: f"{OUT}/data/{run_dataset(wc)}/shards/index.json",
    output:
        f"{OUT}/runs/{{run}}/analysis/traces.npz",
    params:
        tokens=lambda wc: EXP.runs[wc.run].analysis["tokens"],
        seq_len=lambda wc: EXP.runs[wc.run].analysis["seq_len"],
        batch=lambda wc: EXP.runs[wc.run].analysis["batch_size"],
        device=lambda wc: EXP.runs[wc.run].analysis["device"],
        shards_dir=lambda wc: f"{OUT}/data/{run_dataset(wc)}/shards",
    resources:
        gpu=stage_resource("analysis", "gpu"),
        cpus_per_gpu=stage_resource("analysis", "cpus"),
        mem_mb=stage_resource("analysis", "mem_mb"),
        runtime=stage_resource("analysis", "runtime"),
    shell:
        recorded("pathmoe analyze traces --checkpoint " + selected_checkpoint("{input.selected:q}")
                 + " --shards {params.shards_dir:q} --tokens {params.tokens:q} --seq-len {params.seq_len:q}"
                 + " --batch-size {params.batch:q} --device {params.device:q} --out {output:q}")


rule analyze_traces:
    input:
        traces=f"{OUT}/runs/{{run}}/analysis/traces.npz",
        tokenizer=lambda wc: f"{OUT}/data/{run_dataset(wc)}/tokenizer",
    output:
        f"{OUT}/runs/{{run}}/analysis/{{kind}}.json",
    wildcard_constraints:
        kind="|".join(RULE_ANALYSES),
    # CPU analyses of a trace file, minutes each at paper scale: the SLURM profile batches up to 8
    # of them into one job (group-components) instead of one sbatch each
    group: "trace_analyses"
    params:
        # analysis.top_paths: how many frequent paths specialization.json lists (Fig 5 draws a prefix)
        num_paths=lambda wc: (["--num-paths", str(EXP.runs[wc.run].analysis["top_paths"])]
                              if wc.kind == "specialization" else []),
    shell:
        recorded("pathmoe analyze {wildcards.kind:q} --traces {input.traces:q} --tokenizer {input.tokenizer:q}"
                 " {params.num_paths:q} --out {output:q}", deterministic=True)


rule robustness:
    input:
        selected=f"{OUT}/runs/{{run}}/eval/selected.json",
        shards=lambda wc: f"{OUT}/data/{run_dataset(wc)}/shards/index.json",
    output:
        f"{OUT}/runs/{{run}}/analysis/robustness.json",
    params:
        p=lambda wc: [str(p) for p in EXP.runs[wc.run].analysis["permute_p"]],
        tokens=lambda wc: EXP.runs[wc.run].analysis["tokens"],
        seq_len=lambda wc: EXP.runs[wc.run].analysis["seq_len"],
        batch=lambda wc: EXP.runs[wc.run].analysis["batch_size"],
        device=lambda wc: EXP.runs[wc.run].analysis["device"],
        shards_dir=lambda wc: f"{OUT}/data/{run_dataset(wc)}/shards",
    resources:
        gpu=stage_resource("analysis", "gpu"),
        cpus_per_gpu=stage_resource("analysis", "cpus"),
        mem_mb=stage_resource("analysis", "mem_mb"),
        runtime=stage_resource("analysis", "runtime"),
    shell:
        recorded("pathmoe analyze robustness --checkpoint " + selected_checkpoint("{input.selected:q}")
                 + " --shards {params.shards_dir:q} --tokens {params.tokens:q} --seq-len {params.seq_len:q}"
                 + " --batch-size {params.batch:q} --device {params.device:q} --p {params.p:q} --out {output:q}")
