"""Figures 3-8 of the paper (matplotlib, Agg backend), each written as PDF and PNG.

Every figure reads only the contract's files: records (Fig 3, 6) and per-run analysis JSONs
(Fig 4, 5, 7, 8). A row naming a base run with several seeds is averaged over seeds (shaded or
error-barred 95% CI where the seeds allow it), except Fig 5, which shows each row's first seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from pathmoe.io import atomic_path, read_json  # noqa: E402
from pathmoe.report.aggregate import base_run_cells, lookup, run_records, scale_factor  # noqa: E402
from pathmoe.report.spec import FIG3_DEFAULT_TASKS, FIGURES, ReportSpec, Row, TaskColumn  # noqa: E402

STYLES = ("-", "--", "-.", ":")
# Fig 5: one fixed colour per token category (Table 9's 23 + `other`), chosen greedily from
# matplotlib's qualitative palettes for the largest smallest CIELAB distance (25.7, CIE76), so no two
# categories look alike and a category has the same colour in every panel and every report.
CATEGORY_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
                    "#17becf", "#fdc086", "#a1d99b", "#f0027f", "#637939", "#dadaeb", "#a6761d", "#ffff99",
                    "#ff9896", "#1b9e77", "#393b79", "#ffff33", "#e6ab02", "#9e9ac8", "#f7b6d2")
OTHER_COLOR = "#7f7f7f"


def category_colors(categories: list[str]) -> dict[str, str]:
    """Colour of each category: Table 9's in table order, `other` grey, unknown names after them."""
    from pathmoe.analysis.categories import CATEGORIES, OTHER

    known = [c for c in CATEGORIES if c != OTHER]
    extra = sorted(c for c in categories if c not in CATEGORIES)
    order = known + extra
    if len(order) > len(CATEGORY_PALETTE):
        raise ValueError(f"fig5: {len(order)} categories but {len(CATEGORY_PALETTE)} distinct colours")
    colors = {c: CATEGORY_PALETTE[i] for i, c in enumerate(order)}
    colors[OTHER] = OTHER_COLOR
    return {c: colors[c] for c in categories}


def render_figure(name: str, spec: ReportSpec, records: pd.DataFrame, runs_dir: Path, out_dir: Path) -> list[Path]:
    """Draw figure `name` (fig3, fig4, fig5, fig6a, fig6b, fig7, fig8); write <name>.pdf and .png."""
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; allowed: {list(FIGURES)}")
    draw: Callable[..., Any] = _DRAWERS[name]
    fig = draw(spec, records, Path(runs_dir), spec.figure_rows(name), spec.figure(name))
    out_dir = Path(out_dir)
    paths = [out_dir / f"{name}.pdf", out_dir / f"{name}.png"]
    try:
        fig.tight_layout()
        for p in paths:
            with atomic_path(p, suffix=p.suffix) as tmp:
                fig.savefig(tmp, format=p.suffix[1:], dpi=150)
    finally:
        plt.close(fig)
    return paths


def _analysis(runs_dir: Path, spec: ReportSpec, row: Row, fname: str, figure: str,
              first_seed_only: bool = False) -> list[dict[str, Any]]:
    """The analysis JSON of every seed of a row's run (or of its first seed only)."""
    out = []
    runs = spec.seed_runs(row.run)
    for run in runs[:1] if first_seed_only else runs:
        p = runs_dir / run / "analysis" / fname
        if not p.is_file():
            raise FileNotFoundError(f"{figure} row {row.label!r}: {p} not found")
        out.append(read_json(p))
    return out


def _mean_band(curves: list[list[float]]) -> tuple[np.ndarray, np.ndarray | None]:
    arr = np.asarray(curves, dtype=float)
    if len(arr) < 2:
        return arr[0], None
    return arr.mean(0), stats.t.ppf(0.975, len(arr) - 1) * arr.std(0, ddof=1) / np.sqrt(len(arr))


def _line(ax: plt.Axes, x: Any, curves: list[list[float]], label: str, style: str = "-", marker: str | None = None) -> None:
    mean, band = _mean_band(curves)
    line, = ax.plot(x, mean, style, label=label, marker=marker)
    if band is not None:
        ax.fill_between(x, mean - band, mean + band, alpha=0.2, color=line.get_color())


def _fig3(spec: ReportSpec, records: pd.DataFrame, runs_dir: Path, rows: list[Row], cfg: dict) -> plt.Figure:
    """Accuracy of each task over exported checkpoints (one line per run, e.g. ± LBL)."""
    tasks = cfg.get("tasks", FIG3_DEFAULT_TASKS)
    by_task = {t.task: t for t in spec.tasks}
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        col = by_task.get(task, TaskColumn(task, None, task))
        for i, row in enumerate(rows):
            per_seed = []
            for run in spec.seed_runs(row.run):
                sub = run_records(records, run, f"fig3 row {row.label!r}")
                hit = lookup(sub, col)
                if hit.empty:
                    raise ValueError(f"fig3 row {row.label!r}: run {run!r} has no records for task {task!r}")
                per_seed.append(hit.groupby("step")["value"].mean() * scale_factor(task))
            steps = sorted(set.intersection(*(set(s.index) for s in per_seed)))
            _line(ax, steps, [[s[k] for k in steps] for s in per_seed], row.label, STYLES[i % len(STYLES)])
        ax.set(title=col.label, xlabel="training step", ylabel="accuracy (%)")
        ax.legend(fontsize=8)
    return fig


def _fig4(spec: ReportSpec, records: pd.DataFrame, runs_dir: Path, rows: list[Row], cfg: dict) -> plt.Figure:
    """Coverage of the top-k paths; seeds (each on its own k grid, up to its unique_paths) share one grid."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for i, row in enumerate(rows):
        data = _analysis(runs_dir, spec, row, "paths.json", "fig4")
        k, curves = coverage_on_common_grid([d["coverage"] for d in data])
        _line(ax, k, curves, row.label, STYLES[i % len(STYLES)])
    ax.set(xscale="log", xlabel="top-k most frequent paths", ylabel="cumulative token coverage", ylim=(0, 1.02))
    ax.legend(fontsize=8)
    return fig


def coverage_on_common_grid(coverages: list[dict[str, list]]) -> tuple[list[float], list[list[float]]]:
    """Every seed's coverage curve on the union of their k grids.

    Between grid points coverage is interpolated linearly; beyond a seed's last k (its
    unique_paths) it is 1, since its k most frequent paths then hold every token.
    """
    grid = np.unique(np.concatenate([np.asarray(c["k"], dtype=float) for c in coverages]))
    return grid.tolist(), [np.interp(grid, c["k"], c["fraction"], right=1.0).tolist() for c in coverages]


def _fig5(spec: ReportSpec, records: pd.DataFrame, runs_dir: Path, rows: list[Row], cfg: dict) -> plt.Figure:
    """Stacked bars: category mix of each of the most frequent paths, one panel per row (its first seed).

    Paths are not comparable across seeds, so the bars cannot be averaged; the DAG builds only the
    first seed's specialization.json for this figure.
    """
    top = int(cfg.get("top_paths", 12))
    fig, axes = plt.subplots(1, len(rows), figsize=(5.5 * len(rows), 4), squeeze=False, sharey=True)
    panels = [(row, _analysis(runs_dir, spec, row, "specialization.json", "fig5", first_seed_only=True)[0])
              for row in rows]
    cats = sorted({c for _, d in panels for p in d["paths"][:top] for c in p["categories"]})
    colors = category_colors(cats)
    for ax, (row, d) in zip(axes[0], panels):
        paths = d["paths"][:top]
        bottom = np.zeros(len(paths))
        for c, color in colors.items():
            vals = np.array([p["categories"].get(c, 0.0) for p in paths])
            ax.bar(range(len(paths)), vals, bottom=bottom, color=color, label=c)
            bottom += vals
        ax.set(title=f"{row.label} (mean concentration {d.get('mean_concentration', float('nan')):.2f})",
               xlabel="path rank", ylabel="category fraction", ylim=(0, 1))
        ax.set_xticks(range(len(paths)), [str(i + 1) for i in range(len(paths))])
    axes[0][-1].legend(fontsize=6, bbox_to_anchor=(1.01, 1), loc="upper left")
    return fig


def _ablation(name: str) -> Callable[..., plt.Figure]:
    def draw(spec: ReportSpec, records: pd.DataFrame, runs_dir: Path, rows: list[Row], cfg: dict) -> plt.Figure:
        """Accuracy per ablation setting (selected checkpoint, mean ± 95% CI over seeds): the average
        first, then one panel per task of `report.tasks` (the paper's text reads per-task results)."""
        cells = [base_run_cells(spec, records, runs_dir, r.run, spec.tasks, [], f"{name} row {r.label!r}") for r in rows]
        panels = [("avg", "Average")] + [(t.task, t.label) for t in spec.tasks]
        ncols = min(3, len(panels))
        nrows = -(-len(panels) // ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3.2 * nrows), squeeze=False)
        for ax, (key, title) in zip(axes.flat, panels):
            means = [c[key].mean if c[key].mean is not None else np.nan for c in cells]
            errs = [c[key].ci95 or 0.0 for c in cells]
            ax.bar(range(len(rows)), means, yerr=errs, capsize=3, color="tab:blue" if key == "avg" else "tab:gray")
            ax.set_xticks(range(len(rows)), [r.label for r in rows])
            lo = np.nanmin(means) if np.isfinite(means).any() else 0.0
            ax.set(title=title, ylabel="accuracy (%)", ylim=(max(0.0, lo - 5), None),
                   xlabel="top-k" if name == "fig6a" else "block size")
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
        return fig
    return draw


def _fig7(spec: ReportSpec, records: pd.DataFrame, runs_dir: Path, rows: list[Row], cfg: dict) -> plt.Figure:
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, row in enumerate(rows):
        data = _analysis(runs_dir, spec, row, "consistency.json", "fig7")
        _line(a, data[0]["windows"], [d["path_consistency"] for d in data], row.label, STYLES[i % len(STYLES)], "o")
        _line(b, data[0]["run_lengths"]["length"], [d["run_lengths"]["fraction"] for d in data], row.label, STYLES[i % len(STYLES)], "o")
    a.set(title="(a) path consistency", xlabel="window (layers)", ylabel="consistency", ylim=(0, 1.02))
    b.set(title="(b) sustained engagement", xlabel="run length (layers)", ylabel="fraction", yscale="log")
    for ax in (a, b):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    a.legend(fontsize=8)
    return fig


def _fig8(spec: ReportSpec, records: pd.DataFrame, runs_dir: Path, rows: list[Row], cfg: dict) -> plt.Figure:
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, row in enumerate(rows):
        ent = _analysis(runs_dir, spec, row, "entropy.json", "fig8")
        rob = _analysis(runs_dir, spec, row, "robustness.json", "fig8")
        _line(a, ent[0]["layers"], [d["mean_entropy_bits"] for d in ent], row.label, STYLES[i % len(STYLES)], "o")
        _line(b, rob[0]["p"], [d["degradation_pct"] for d in rob], row.label, STYLES[i % len(STYLES)], "o")
    a.set(title="(a) per-token routing entropy", xlabel="layer", ylabel="entropy (bits)")
    a.xaxis.set_major_locator(MaxNLocator(integer=True))
    b.set(title="(b) perplexity degradation", xlabel="permutation probability p", ylabel="degradation (%)", yscale="symlog")
    a.legend(fontsize=8)
    return fig


_DRAWERS: dict[str, Callable[..., plt.Figure]] = {
    "fig3": _fig3, "fig4": _fig4, "fig5": _fig5, "fig6a": _ablation("fig6a"), "fig6b": _ablation("fig6b"),
    "fig7": _fig7, "fig8": _fig8,
}
