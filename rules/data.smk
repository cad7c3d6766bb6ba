# Data: resolved dataset spec -> raw documents -> tokenizer -> token shards.

localrules: dataset_config


rule dataset_config:
    """The validated dataset config as the data stage reads it; rewritten (and so re-triggering
    downstream jobs) only when the dataset's config changes."""
    output:
        f"{OUT}/data/{{dataset}}/dataset_config.json",
    params:
        spec=lambda wc: json.dumps(EXP.dataset_config(wc.dataset), indent=2, sort_keys=True),
    shell:
        # plain shell, not a `run:` block: a Python job would re-import the workflow (seconds each)
        WRITE_SPEC


rule fetch_documents:
    input:
        f"{OUT}/data/{{dataset}}/dataset_config.json",
    output:
        train=f"{OUT}/data/{{dataset}}/raw/train.jsonl",
        val=f"{OUT}/data/{{dataset}}/raw/val.jsonl",
    params:
        data_dir=lambda wc: f"{OUT}/data/{wc.dataset}",
    resources:
        runtime=600,
    shell:
        recorded("pathmoe data fetch --dataset-config {input:q} --out {params.data_dir:q}", deterministic=True)


rule build_tokenizer:
    input:
        cfg=f"{OUT}/data/{{dataset}}/dataset_config.json",
        train=f"{OUT}/data/{{dataset}}/raw/train.jsonl",
    output:
        directory(f"{OUT}/data/{{dataset}}/tokenizer"),
    params:
        data_dir=lambda wc: f"{OUT}/data/{wc.dataset}",
    shell:
        recorded("pathmoe data tokenizer --dataset-config {input.cfg:q} --out {params.data_dir:q}", deterministic=True)


rule tokenize:
    input:
        cfg=f"{OUT}/data/{{dataset}}/dataset_config.json",
        train=f"{OUT}/data/{{dataset}}/raw/train.jsonl",
        val=f"{OUT}/data/{{dataset}}/raw/val.jsonl",
        tokenizer=f"{OUT}/data/{{dataset}}/tokenizer",
    output:
        f"{OUT}/data/{{dataset}}/shards/index.json",
    # tokenize_to_shards runs num_workers encoding processes: reserve that many cores. Snakemake
    # caps threads at --cores (for a SLURM submission: the submit host's cores), which is why the
    # SLURM profile still states tokenize's cpus_per_task itself.
    threads: lambda wc: EXP.dataset_config(wc.dataset)["num_workers"]
    params:
        data_dir=lambda wc: f"{OUT}/data/{wc.dataset}",
    resources:
        runtime=1440,
    shell:
        recorded("pathmoe data tokenize --dataset-config {input.cfg:q} --out {params.data_dir:q}", deterministic=True)

