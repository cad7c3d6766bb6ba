"""`pathmoe report table|figure|curves|headlines|stats|document ...`: thin CLI over the report library.

Every command takes explicit files (the parsed spec JSON the config stage writes, records.csv, the
runs directory), never the experiment YAML.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pathmoe.report.spec import FIGURES, TABLES, ReportSpec

if TYPE_CHECKING:
    import pandas as pd

# The renderers (pandas, scipy, matplotlib) are imported by the command that uses them: each
# report job is a process of its own, and `pathmoe --help` should not pay for any of them.


def register(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser("report", help="render the paper's tables, figures and the report document")
    sub = report.add_subparsers(dest="report_command", required=True)

    t = sub.add_parser("table", help="write <out-dir>/<name>.tex, .json and _vs_paper.tex")
    t.add_argument("name", choices=TABLES)
    _common(t, default_out="reports/tables")
    t.add_argument("--reference", type=Path, default=None, help="paper reference YAML (default: configs/paper_reference.yaml)")
    t.set_defaults(func=_table)

    f = sub.add_parser("figure", help="write <out-dir>/<name>.pdf and .png")
    f.add_argument("name", choices=FIGURES)
    _common(f, default_out="reports/figures")
    f.set_defaults(func=_figure)

    c = sub.add_parser("curves", help="write <out-dir>/<group>.pdf and .png: a run group's training curves")
    c.add_argument("group", help="the run group (base run) the figure is named after")
    c.add_argument("--metrics", type=Path, nargs="+", required=True, help="each seed run's metrics.jsonl")
    c.add_argument("--labels", nargs="+", required=True, help="one legend label per --metrics file (the seed runs)")
    c.add_argument("--out-dir", type=Path, default=Path("reports/figures/curves"))
    c.set_defaults(func=_curves)

    h = sub.add_parser("headlines", help="write <out-dir>/headlines.json and .tex: the text's headline numbers beside ours")
    _common(h, default_out="reports/tables")
    h.add_argument("--reference", type=Path, default=None, help="paper reference YAML (default: configs/paper_reference.yaml)")
    h.set_defaults(func=_headlines)

    st = sub.add_parser("stats", help="write <out-dir>/stats.json and .tex: mean, 95%% CI and paired differences over seeds")
    _common(st, default_out="reports/tables")
    st.set_defaults(func=_stats)

    d = sub.add_parser("document", help="write <out-dir>/pathmoe_report.tex and summary.md")
    d.add_argument("--spec", type=Path, required=True)
    d.add_argument("--out-dir", type=Path, default=Path("reports"))
    d.add_argument("--curves", nargs="*", default=[], metavar="GROUP",
                   help="run groups whose training curves (<out-dir>/figures/curves/<group>.pdf) the document includes")
    d.set_defaults(func=_document)


def _common(p: argparse.ArgumentParser, default_out: str) -> None:
    p.add_argument("--spec", type=Path, required=True, help="report spec JSON (ReportSpec.to_json)")
    p.add_argument("--records", type=Path, nargs="*", default=[],
                   help="records CSVs (results/records.csv, or just the artifact's runs' eval/records.csv); "
                        "not needed for table4/5/9, fig4/5/7/8")
    p.add_argument("--runs-dir", type=Path, required=True, help="<out>/runs")
    p.add_argument("--out-dir", type=Path, default=Path(default_out))


def _records(paths: list[Path]) -> pd.DataFrame:
    """The records of every given CSV in one frame (a table reads only its own runs' records)."""
    import pandas as pd

    from pathmoe.eval.metrics import RECORD_COLUMNS  # the eval stage owns the records schema
    from pathmoe.report.aggregate import load_records

    if not paths:
        return pd.DataFrame(columns=list(RECORD_COLUMNS))
    return pd.concat([load_records(p) for p in paths], ignore_index=True)


def _table(args: argparse.Namespace) -> None:
    from pathmoe.report.reference import load_reference
    from pathmoe.report.tables import render_table

    paths = render_table(args.name, ReportSpec.from_json(args.spec), _records(args.records), args.out_dir,
                         args.runs_dir, load_reference(args.reference))
    print("\n".join(str(p) for p in paths))


def _figure(args: argparse.Namespace) -> None:
    from pathmoe.report.figures import render_figure

    paths = render_figure(args.name, ReportSpec.from_json(args.spec), _records(args.records), args.runs_dir, args.out_dir)
    print("\n".join(str(p) for p in paths))


def _curves(args: argparse.Namespace) -> None:
    from pathmoe.report.curves import render_curves

    paths = render_curves(args.group, args.metrics, args.labels, args.out_dir)
    print("\n".join(str(p) for p in paths))


def _headlines(args: argparse.Namespace) -> None:
    from pathmoe.report.headlines import render_headlines
    from pathmoe.report.reference import load_reference

    paths = render_headlines(ReportSpec.from_json(args.spec), _records(args.records), args.runs_dir, args.out_dir,
                             load_reference(args.reference))
    print("\n".join(str(p) for p in paths))


def _stats(args: argparse.Namespace) -> None:
    from pathmoe.report.stats import render_stats

    paths = render_stats(ReportSpec.from_json(args.spec), _records(args.records), args.runs_dir, args.out_dir)
    print("\n".join(str(p) for p in paths))


def _document(args: argparse.Namespace) -> None:
    from pathmoe.report.document import write_document

    print(write_document(ReportSpec.from_json(args.spec), args.out_dir, args.curves))
