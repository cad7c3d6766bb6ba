# Data: resolved dataset spec -> raw documents -> tokenizer -> token shards.
# The three jobs of a dataset run one after the other: on a cluster they are one job (`group:
# "data"`, one sbatch and one queue wait per dataset), asking for the largest of their resources.
#
# Each data job's declared output is a small stamp flagged update(): raw/manifest.json,
# tokenizer/ and shards/index.json. Snakemake never deletes an update() output before the job,
# and restores it when the job fails; the library writes the bulky files (raw/*.jsonl, shard
# .bin files) next to the old ones and swaps them in only when complete. So a job that fails on
# bad input leaves the dataset's previously built data intact. Local source files and a local
# tokenizer file/folder are rule inputs: editing one reruns exactly the jobs that read it. Hub
# downloads go through the config's revision lock (pathmoe.hub), passed as --revision-lock.

from pathmoe.data.paths import source_input_files, tokenizer_input_files

localrules: dataset_config


def data_dir(wildcards):
    return f"{OUT}/data/{wildcards.dataset}"


def data_resource(key):
    """One SLURM resource of a dataset's data jobs (datasets.<name>.resources, pathmoe.config)."""
    return lambda wildcards: EXP.data_resources[wildcards.dataset][key]


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
        cfg=f"{OUT}/data/{{dataset}}/dataset_config.json",
        sources=lambda wc: source_input_files(EXP.dataset_config(wc.dataset)),
    output:
        update(f"{OUT}/data/{{dataset}}/raw/manifest.json"),
    group: "data"
    params:
        out=data_dir,
        lock=lambda wc: EXP.revision_lock_args(wc.dataset),
    resources:
        mem_mb=data_resource("mem_mb"),
        runtime=data_resource("runtime"),
    shell:
        recorded("pathmoe data fetch --dataset-config {input.cfg:q} --out {params.out:q} {params.lock:q}",
                 deterministic=True)
        + " && touch {output:q}"


def raw_files(wildcards):
    """raw/train.jsonl and raw/val.jsonl, which the raw/manifest.json stamp stands for."""
    return [f"{data_dir(wildcards)}/raw/{split}.jsonl" for split in ("train", "val")]


def trains_bpe(wildcards):
    return EXP.dataset_config(wildcards.dataset)["tokenizer"]["kind"] == "bpe"


rule build_tokenizer:
    # a bpe tokenizer trains on raw/train.jsonl; a hf one reads only its local files, if any
    input:
        cfg=f"{OUT}/data/{{dataset}}/dataset_config.json",
        raw=lambda wc: f"{data_dir(wc)}/raw/manifest.json" if trains_bpe(wc) else [],
        local=lambda wc: tokenizer_input_files(EXP.dataset_config(wc.dataset)),
    output:
        update(directory(f"{OUT}/data/{{dataset}}/tokenizer")),
    group: "data"
    params:
        out=data_dir,
        reads=lambda wc: [f"{data_dir(wc)}/raw/train.jsonl"] if trains_bpe(wc) else [],
        lock=lambda wc: EXP.revision_lock_args(wc.dataset),
    resources:
        mem_mb=data_resource("mem_mb"),
        runtime=data_resource("runtime"),
    shell:
        recorded("pathmoe data tokenizer --dataset-config {input.cfg:q} --out {params.out:q} {params.lock:q}",
                 deterministic=True, reads="{params.reads:q}") + " && touch {output:q}"


rule tokenize:
    input:
        cfg=f"{OUT}/data/{{dataset}}/dataset_config.json",
        raw=f"{OUT}/data/{{dataset}}/raw/manifest.json",
        tokenizer=f"{OUT}/data/{{dataset}}/tokenizer",
    output:
        update(f"{OUT}/data/{{dataset}}/shards/index.json"),
    group: "data"
    params:
        out=data_dir,
        reads=raw_files,
    # tokenize_to_shards runs num_workers encoding processes: reserve that many cores. Snakemake
    # caps threads at --cores (for a SLURM submission: the submit host's cores), so the SLURM job
    # asks for its CPUs through cpus_per_task, from the same config value.
    threads: lambda wc: EXP.dataset_config(wc.dataset)["num_workers"]
    resources:
        cpus_per_task=lambda wc: EXP.dataset_config(wc.dataset)["num_workers"],
        mem_mb=data_resource("mem_mb"),
        runtime=data_resource("runtime"),
    shell:
        recorded("pathmoe data tokenize --dataset-config {input.cfg:q} --out {params.out:q}",
                 deterministic=True, reads="{params.reads:q}") + " && touch {output:q}"
