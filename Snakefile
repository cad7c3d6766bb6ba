# pathmoe: "Path-Constrained Mixture-of-Experts" end to end as one DAG.
#   snakemake all                                     embedded default (CPU, offline, minutes)
#   snakemake -n all --configfile=configs/paper-0.9b.yaml   plan the paper reproduction
#   snakemake --profile slurm all                     the paper on a SLURM cluster (docs/slurm.md)
#   snakemake reports/default/tables/table1.tex       one artifact and only what it needs
# --configfile takes several values: put the target before it, or write --configfile=FILE.
# The rules only call the `pathmoe` library/CLI; see docs/pipeline.md.
include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/eval.smk"
include: "rules/analysis.smk"
include: "rules/report.smk"
include: "rules/audit.smk"
