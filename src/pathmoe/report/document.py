"""The report's two front doors: a LaTeX main file and a Markdown summary beside the paper.

Both are assembled from files render_table/render_figure already wrote (reports/tables/*.json,
reports/figures/*.pdf), so the document step never recomputes a number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from pathmoe.io import atomic_write_text, read_json
from pathmoe.report.latex import escape, fmt_auto, fmt_delta, render_template
from pathmoe.report.spec import FIG3_DEFAULT_TASKS, FIGURES, TABLES, TABLES_WITH_REFERENCE, ReportSpec

CURVES_DIR = "figures/curves"  # <report_dir>/figures/curves/<group>.{pdf,png}: pathmoe.report.curves
FIGURE_CAPTIONS = {
    "fig3": "{tasks} accuracy over training, with and without the load balancing loss.",
    "fig4": "Cumulative token coverage of the top-k most frequent expert paths.",
    "fig5": "Token categories of the most frequent paths (linguistic specialisation).",
    "fig6a": "Top-k ablation: average accuracy, then each task's accuracy.",
    "fig6b": "Block-size ablation: average accuracy, then each task's accuracy.",
    "fig7": "(a) Path consistency vs window size; (b) run-length distribution of sustained expert engagement.",
    "fig8": "(a) Per-layer routing entropy; (b) perplexity degradation when expert indices are permuted with probability p.",
}


def figure_caption(name: str, spec: ReportSpec) -> str:
    """A figure's caption: the config's own, else the default naming what the figure shows.

    Fig 3's names the tasks it plots (their `report.tasks` labels), whatever the config uses.
    """
    cfg = spec.figures[name]
    if "caption" in cfg:
        return cfg["caption"]
    if name == "fig3":
        labels = {t.task: t.label for t in spec.tasks}
        names = [labels.get(t, t) for t in cfg.get("tasks", FIG3_DEFAULT_TASKS)]
        joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        return FIGURE_CAPTIONS[name].format(tasks=joined)
    return FIGURE_CAPTIONS[name]


def write_document(spec: ReportSpec, out_dir: Path, curves: Sequence[str] = ()) -> Path:
    """Write <out_dir>/pathmoe_report.tex and <out_dir>/summary.md; return the .tex path.

    Expects <out_dir>/tables/<name>.{tex,json} and <out_dir>/figures/<name>.pdf for every
    configured artifact, and <out_dir>/figures/curves/<group>.pdf for every run group in `curves`
    (FileNotFoundError naming the first missing one otherwise).
    """
    out_dir = Path(out_dir)
    tables = [t for t in TABLES if t in spec.tables]
    figures = [f for f in FIGURES if f in spec.figures]
    needed = [out_dir / "tables" / f"{t}.json" for t in tables] + [out_dir / "figures" / f"{f}.pdf" for f in figures]
    extra = (["stats"] if spec.stats else []) + (["headlines"] if spec.has_headlines else [])
    needed += [out_dir / "tables" / f"{t}.json" for t in extra]
    needed += [out_dir / CURVES_DIR / f"{g}.pdf" for g in curves]
    for p in needed:
        if not p.is_file():
            raise FileNotFoundError(f"report document: {p} missing (render it first)")
    comparisons = [t for t in tables if t in TABLES_WITH_REFERENCE]
    captions = {f: figure_caption(f, spec) for f in figures}  # plain text
    figs = [{"name": f, "caption": escape(captions[f])} for f in figures]
    tex = out_dir / "pathmoe_report.tex"
    atomic_write_text(tex, render_template("report.tex.j2", tables=tables + (["stats"] if spec.stats else []),
                                           figures=figs, comparisons=comparisons, headlines=spec.has_headlines,
                                           curves=[{"group": g, "label": escape(g)} for g in curves]))
    summary = ["# PathMoE reproduction summary", "",
               "Accuracies in percent at the selected checkpoint; each cell is `ours (paper, Δ)` where the paper reports "
               "the number, with `± x` the 95% CI half-width over seeds where there are several.", ""]
    for t in tables:
        summary += markdown_table(t, read_json(out_dir / "tables" / f"{t}.json")) + [""]
    if spec.stats:
        from pathmoe.report.stats import markdown_stats

        summary += markdown_stats(read_json(out_dir / "tables" / "stats.json")) + [""]
    if spec.has_headlines:
        from pathmoe.report.headlines import markdown_headlines

        summary += markdown_headlines(read_json(out_dir / "tables" / "headlines.json")) + [""]
    if figures:
        summary += ["## Figures", ""] + [f"- `{f}`: {captions[f]} (figures/{f}.png)" for f in figures] + [""]
    if curves:
        summary += ["## Training curves", "", "Loss, learning rate, gradient norm and per-layer expert load of each run "
                    "group (its seeds), from metrics.jsonl:", ""]
        summary += [f"- `{g}`: {CURVES_DIR}/{g}.png" for g in curves] + [""]
    atomic_write_text(out_dir / "summary.md", "\n".join(summary))
    return tex


# Tables the paper lays out with systems as columns (metrics/hyperparameters down the side).
TRANSPOSED = ("table2", "table4", "table5")


def _cell(value: Any, paper: Any = None, delta: Any = None, ci: Any = None) -> str:
    text = _num(value)
    if ci is not None and value is not None:
        text += f" ± {_num(ci)}"
    if paper is not None:
        text += f" ({_num(paper)}, {fmt_delta(delta)})"
    return text.replace("|", "\\|")


def _num(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return fmt_auto(float(value))
    return "--" if value is None else str(value)


def markdown_table(name: str, data: dict[str, Any]) -> list[str]:
    """One table JSON as Markdown, paper and Δ in each cell; tables 2, 4, 5 transposed as in the paper."""
    cols = data["columns"]
    labels = data.get("column_labels", {})
    systems = data.get("row_labels", list(data["rows"]))
    paper, delta = data.get("paper", {}), data.get("delta", {})

    ci95 = data.get("ci95", {})

    def cell(row: str, c: str) -> str:
        return _cell(data["rows"][row].get(c), paper.get(row, {}).get(c), delta.get(row, {}).get(c),
                     ci95.get(row, {}).get(c))

    if name in TRANSPOSED:
        head, lines_of = systems, [(labels.get(c, c), [cell(s, c) for s in systems]) for c in cols]
    else:
        head, lines_of = [labels.get(c, c) for c in cols], [(s, [cell(s, c) for c in cols]) for s in systems]
    lines = [f"## {name}", "", "| | " + " | ".join(str(h) for h in head) + " |", "|---|" + "---|" * len(head)]
    lines += [f"| {first} | " + " | ".join(cells) + " |" for first, cells in lines_of]
    std = data.get("std_final5", {})
    if any(v is not None for v in std.values()):
        lines += ["", "Checkpoint selection: std of the average accuracy across the final 5 checkpoints (pp): " + "; ".join(
            f"{row} {_num(std.get(row))}" for row in systems)]
    paired = data.get("paired_vs_first", {})
    if paired:
        lines += ["", f"Paired t-test over seeds against {systems[0]} (average accuracy): " + "; ".join(
            f"{row} {res['mean_diff']:+.2f} (n={res['n']}, p={res['p_value']:.3g})" for row, res in paired.items())]
    return lines
