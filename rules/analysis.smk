# Path analyses of each run's selected checkpoint on a fixed held-out token set (Tables 3-4,
# Figures 4, 5, 7, 8). Routing traces are collected once; every analysis reads them.

TRACE_ANALYSES = ["paths", "consistency", "entropy", "specialization"]


def selected_checkpoint(selected_json):
    """Shell snippet printing the checkpoint directory that model selection chose."""
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
        shards_dir=lambda wc: f"{OUT}/data/{run_dataset(wc)}/shards",
    resources:
        gpu=stage_resource("analysis", "gpu", 0),
        mem_mb=stage_resource("analysis", "mem_mb", 8000),
        runtime=stage_resource("analysis", "runtime", 60),
    shell:
        recorded("pathmoe analyze traces --checkpoint " + selected_checkpoint("{input.selected}")
                 + " --shards {params.shards_dir} --tokens {params.tokens} --seq-len {params.seq_len}"
                 + " --batch-size {params.batch} --out {output}")


rule analyze_traces:
    input:
        traces=f"{OUT}/runs/{{run}}/analysis/traces.npz",
        tokenizer=lambda wc: f"{OUT}/data/{run_dataset(wc)}/tokenizer",
    output:
        f"{OUT}/runs/{{run}}/analysis/{{kind}}.json",
    wildcard_constraints:
        kind="|".join(TRACE_ANALYSES),
    params:
        command=lambda wc: wc.kind,
    shell:
        recorded("pathmoe analyze {params.command} --traces {input.traces} --tokenizer {input.tokenizer}"
                 " --out {output}", deterministic=True)


rule robustness:
    input:
        selected=f"{OUT}/runs/{{run}}/eval/selected.json",
        shards=lambda wc: f"{OUT}/data/{run_dataset(wc)}/shards/index.json",
    output:
        f"{OUT}/runs/{{run}}/analysis/robustness.json",
    params:
        p=lambda wc: " ".join(map(str, EXP.runs[wc.run].analysis["permute_p"])),
        tokens=lambda wc: EXP.runs[wc.run].analysis["tokens"],
        seq_len=lambda wc: EXP.runs[wc.run].analysis["seq_len"],
        shards_dir=lambda wc: f"{OUT}/data/{run_dataset(wc)}/shards",
    resources:
        gpu=stage_resource("analysis", "gpu", 0),
        mem_mb=stage_resource("analysis", "mem_mb", 8000),
        runtime=stage_resource("analysis", "runtime", 60),
    shell:
        recorded("pathmoe analyze robustness --checkpoint " + selected_checkpoint("{input.selected}")
                 + " --shards {params.shards_dir} --tokens {params.tokens} --seq-len {params.seq_len}"
                 + " --p {params.p} --out {output}")
