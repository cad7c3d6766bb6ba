# Reports: every table and figure of the paper (LaTeX + JSON + comparison with the paper's
# numbers; PDF + PNG figures) and one document gathering them. Each artifact depends only on the
# runs and analyses it shows, so `snakemake reports/tables/table1.tex` trains only Table 1's runs.
from pathmoe.config import REPORT_OWNER_FILE, report_owner
from pathmoe.report import FIGURES, TABLES, TABLES_WITH_REFERENCE

# Every report job reads small JSON/CSV files and writes a table or figure in seconds: on a cluster
# they run on the submit host instead of one sbatch (and queue wait) each.
localrules: report_spec, table_with_reference, table_plain, figure, training_curves, headlines, stats, document

SPEC = f"{OUT}/report_spec.json"
REPORT_TABLES = [t for t in TABLES if EXP.report is not None and t in EXP.report.tables]
REPORT_FIGURES = [f for f in FIGURES if EXP.report is not None and f in EXP.report.figures]
RECORD_TABLES = {"table1", "table2", "table3", "table6", "table7", "table8"}
RECORD_FIGURES = {"fig3", "fig6a", "fig6b"}
FIGURE_ANALYSES = {"fig4": ["paths"], "fig5": ["specialization"], "fig7": ["consistency"],
                   "fig8": ["entropy", "robustness"]}


def seed_runs(rows):
    return [run for row in rows for run in EXP.base_runs[row.run]]


def eval_files(runs):
    return [f"{OUT}/runs/{r}/eval/{f}" for r in runs for f in ("records.csv", "selected.json")]


def table_inputs(wildcards):
    name = wildcards.name
    runs = seed_runs(EXP.report.rows(name))
    inputs = {"spec": SPEC, "records": [], "other": []}
    if name in RECORD_TABLES:
        inputs["records"] = [f"{OUT}/runs/{r}/eval/records.csv" for r in runs]
        inputs["other"] = [f"{OUT}/runs/{r}/eval/selected.json" for r in runs]
    elif name == "table4":
        inputs["other"] = [f"{OUT}/runs/{r}/analysis/paths.json" for r in runs]
    elif name == "table5":
        inputs["other"] = [f"{OUT}/runs/{r}/run_config.json" for r in runs]
        inputs["other"] += [f"{OUT}/data/{EXP.runs[r].dataset}/shards/index.json" for r in runs
                            if EXP.runs[r].model.get("vocab_size") is None]
    return inputs


def figure_inputs(wildcards):
    name = wildcards.name
    rows = EXP.report.figure_rows(name)
    runs = seed_runs(rows)
    inputs = {"spec": SPEC, "records": [], "other": []}
    if name in RECORD_FIGURES:
        inputs["records"] = [f"{OUT}/runs/{r}/eval/records.csv" for r in runs]
        inputs["other"] = [f"{OUT}/runs/{r}/eval/selected.json" for r in runs]
    if name == "fig5":  # one panel per row from its first seed (paths do not average over seeds)
        runs = [EXP.base_runs[row.run][0] for row in rows]
    for kind in FIGURE_ANALYSES.get(name, []):
        inputs["other"] += [f"{OUT}/runs/{r}/analysis/{kind}.json" for r in runs]
    return inputs


def headline_inputs(wildcards):
    """What the text's headline numbers are computed from (pathmoe.report.headlines)."""
    rep = EXP.report
    record_runs = [r for name in ("fig6a", "fig6b") if name in rep.figures for r in seed_runs(rep.figure_rows(name))]
    record_runs += seed_runs(rep.rows("table1")) if "table1" in rep.tables else []
    inputs = {"spec": SPEC, "records": [f"{OUT}/runs/{r}/eval/records.csv" for r in dict.fromkeys(record_runs)],
              "other": eval_files(dict.fromkeys(record_runs))}
    for name, kinds in (("fig7", ["consistency"]), ("fig8", ["entropy", "robustness"])):
        if name in rep.figures:
            inputs["other"] += [f"{OUT}/runs/{r}/analysis/{k}.json" for r in seed_runs(rep.figure_rows(name)) for k in kinds]
    if "table4" in rep.tables and rep.rows("table4"):
        inputs["other"] += [f"{OUT}/runs/{r}/analysis/paths.json" for r in EXP.base_runs[rep.rows("table4")[0].run]]
    return inputs


def stats_inputs(wildcards):
    """Every seed run of the stats rows and references: records, selection, and the analyses."""
    from pathmoe.report.stats import ANALYSIS_FILES

    runs = [r for base in EXP.report.stats_runs() for r in EXP.base_runs[base]]
    inputs = {"spec": SPEC, "records": [f"{OUT}/runs/{r}/eval/records.csv" for r in runs], "other": eval_files(runs)}
    if EXP.report.stats.get("analyses", True):
        inputs["other"] += [f"{OUT}/runs/{r}/analysis/{f}" for r in runs for f in ANALYSIS_FILES]
    return inputs


def records_arg(wildcards, input):
    return ["--records", *input.records] if input.records else []


rule report_spec:
    """The parsed `report:` section; rewritten only when it changes. Beside it, the report
    directory's owner (`<report_dir>/experiment.json`): the Snakefile refuses to start another
    experiment whose report_dir holds it (pathmoe.config.check_report_owner)."""
    output:
        spec=SPEC,
        owner=f"{REPORTS}/{REPORT_OWNER_FILE}",
    params:
        spec=lambda wc: EXP.report.to_json(),
        owner=json.dumps(report_owner(EXP), sort_keys=True),
    shell:
        # plain shell, not a `run:` block: a Python job would re-import the workflow (seconds each)
        "printf '%s\\n' {params.spec:q} > {output.spec:q}.tmp && mv {output.spec:q}.tmp {output.spec:q}"
        " && printf '%s\\n' {params.owner:q} > {output.owner:q}.tmp && mv {output.owner:q}.tmp {output.owner:q}"


rule table_with_reference:
    input:
        unpack(table_inputs),
    output:
        tex=f"{REPORTS}/tables/{{name}}.tex",
        json=f"{REPORTS}/tables/{{name}}.json",
        vs_paper=f"{REPORTS}/tables/{{name}}_vs_paper.tex",
    wildcard_constraints:
        name="|".join(TABLES_WITH_REFERENCE),
    params:
        records=records_arg,
        runs_dir=f"{OUT}/runs",
        out_dir=f"{REPORTS}/tables",
    shell:
        recorded("pathmoe report table {wildcards.name:q} --spec {input.spec:q} {params.records:q}"
                 " --runs-dir {params.runs_dir:q} --out-dir {params.out_dir:q}", deterministic=True)


rule table_plain:
    input:
        unpack(table_inputs),
    output:
        tex=f"{REPORTS}/tables/{{name}}.tex",
        json=f"{REPORTS}/tables/{{name}}.json",
    wildcard_constraints:
        name="|".join(t for t in TABLES if t not in TABLES_WITH_REFERENCE),
    params:
        runs_dir=f"{OUT}/runs",
        out_dir=f"{REPORTS}/tables",
    shell:
        recorded("pathmoe report table {wildcards.name:q} --spec {input.spec:q}"
                 " --runs-dir {params.runs_dir:q} --out-dir {params.out_dir:q}", deterministic=True)


rule figure:
    input:
        unpack(figure_inputs),
    output:
        pdf=f"{REPORTS}/figures/{{name}}.pdf",
        png=report(f"{REPORTS}/figures/{{name}}.png", category="Figures", caption="../docs/report_figure.rst"),
    wildcard_constraints:
        name="|".join(FIGURES),
    params:
        records=records_arg,
        runs_dir=f"{OUT}/runs",
        out_dir=f"{REPORTS}/figures",
    shell:
        recorded("pathmoe report figure {wildcards.name:q} --spec {input.spec:q} {params.records:q}"
                 " --runs-dir {params.runs_dir:q} --out-dir {params.out_dir:q}")


# One training-curves figure per run group (a base run and its seeds), from their metrics.jsonl.
CURVE_GROUPS = list(EXP.base_runs)


def curve_logs(wildcards):
    """metrics.jsonl of each seed run of the group, in the directory of the run that trained it."""
    return [f"{OUT}/runs/{EXP.train_run(r)}/metrics.jsonl" for r in EXP.base_runs[wildcards.group]]


rule training_curves:
    """Loss, lr, grad norm and per-layer expert load of one run group (pathmoe.report.curves). The
    logs are written by the train jobs beside their declared output, train_summary.json."""
    input:
        summaries=lambda wc: [f"{OUT}/runs/{EXP.train_run(r)}/train_summary.json" for r in EXP.base_runs[wc.group]],
    output:
        pdf=f"{REPORTS}/figures/curves/{{group}}.pdf",
        png=report(f"{REPORTS}/figures/curves/{{group}}.png", category="Training curves",
                   caption="../docs/report_curves.rst"),
    wildcard_constraints:
        group="|".join(map(re.escape, CURVE_GROUPS)),
    params:
        metrics=curve_logs,
        labels=lambda wc: EXP.base_runs[wc.group],
        out_dir=f"{REPORTS}/figures/curves",
    shell:
        recorded("pathmoe report curves {wildcards.group:q} --metrics {params.metrics:q} --labels {params.labels:q}"
                 " --out-dir {params.out_dir:q}", reads="{params.metrics:q}")


rule headlines:
    """The paper's headline numbers (text and figures) beside ours: tables/headlines.{json,tex}."""
    input:
        unpack(headline_inputs),
    output:
        tex=f"{REPORTS}/tables/headlines.tex",
        json=f"{REPORTS}/tables/headlines.json",
    params:
        records=records_arg,
        runs_dir=f"{OUT}/runs",
        out_dir=f"{REPORTS}/tables",
    shell:
        recorded("pathmoe report headlines --spec {input.spec:q} {params.records:q}"
                 " --runs-dir {params.runs_dir:q} --out-dir {params.out_dir:q}", deterministic=True)


rule stats:
    """Per metric: mean and 95% CI over seeds, paired difference to the reference (report.stats)."""
    input:
        unpack(stats_inputs),
    output:
        tex=f"{REPORTS}/tables/stats.tex",
        json=f"{REPORTS}/tables/stats.json",
    params:
        records=records_arg,
        runs_dir=f"{OUT}/runs",
        out_dir=f"{REPORTS}/tables",
    shell:
        recorded("pathmoe report stats --spec {input.spec:q} {params.records:q}"
                 " --runs-dir {params.runs_dir:q} --out-dir {params.out_dir:q}", deterministic=True)


def table_outputs(name):
    outs = [f"{REPORTS}/tables/{name}.tex", f"{REPORTS}/tables/{name}.json"]
    if name in TABLES_WITH_REFERENCE:
        outs.append(f"{REPORTS}/tables/{name}_vs_paper.tex")
    return outs


ALL_ARTIFACTS = [p for t in REPORT_TABLES for p in table_outputs(t)] + \
    [f"{REPORTS}/figures/{f}.{ext}" for f in REPORT_FIGURES for ext in ("pdf", "png")]
if EXP.report is not None and EXP.report.has_headlines:
    ALL_ARTIFACTS += [f"{REPORTS}/tables/headlines.{ext}" for ext in ("tex", "json")]
if EXP.report is not None and EXP.report.stats:
    ALL_ARTIFACTS += [f"{REPORTS}/tables/stats.{ext}" for ext in ("tex", "json")]
ALL_ARTIFACTS += [f"{REPORTS}/figures/curves/{g}.{ext}" for g in CURVE_GROUPS for ext in ("pdf", "png")]


rule document:
    input:
        spec=SPEC,
        artifacts=ALL_ARTIFACTS,
    output:
        tex=f"{REPORTS}/pathmoe_report.tex",
        summary=report(f"{REPORTS}/summary.md", category="Tables", caption="../docs/report_summary.rst"),
    params:
        out_dir=REPORTS,
        curves=CURVE_GROUPS,
    shell:
        recorded("pathmoe report document --spec {input.spec:q} --out-dir {params.out_dir:q} --curves {params.curves:q}",
                 deterministic=True)


rule all:
    default_target: True
    input:
        ALL_ARTIFACTS,
        f"{REPORTS}/pathmoe_report.tex",
        f"{OUT}/results/records.csv",
