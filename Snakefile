# pathmoe: "Path-Constrained Mixture-of-Experts" end to end as one DAG.
#   snakemake all                                     embedded default (CPU, offline, minutes)
#   snakemake --configfile configs/paper-0.9b.yaml -n all   plan the paper reproduction
#   snakemake --profile slurm --configfile configs/paper-0.9b.yaml all
#   snakemake reports/tables/table1.tex               one artifact and only what it needs
# The rules only call the `pathmoe` library/CLI; see docs/pipeline.md.
include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/eval.smk"
include: "rules/analysis.smk"
include: "rules/report.smk"
include: "rules/audit.smk"
