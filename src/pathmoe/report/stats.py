"""Statistics over seeds for every metric: mean, 95% CI, and the paired difference to a reference.

A claim such as "PathMoE has lower perplexity than Indep-MoE" is a statement about the difference
between two systems trained from the same seeds. `report.stats` names the systems (rows) and the
reference (Indep-MoE); `render_stats` writes, per metric and system, the mean over seeds with its
95% confidence half-width (t distribution), and the paired difference to the reference over the
shared seeds with its 95% CI and the paired t-test p-value. Seeds pair runs: same initial seed,
same data order. A row may name its own reference (`vs`), e.g. PathB4 with LBL against PathB4
without, to test "no LBL needed".

Metrics: every `report.tasks` accuracy and their average (%, selected checkpoint), validation
perplexity, and with `analyses: true` the routing metrics of the path analyses: routing entropy H
(bits), consecutive-layer decision correlation (%), unique paths, path consistency (%, mean over
the windows of Fig 7), final-layer per-token routing entropy (bits, Fig 8a) and the perplexity
degradation at permutation probability 1 (%, Fig 8b).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from pathmoe.io import atomic_write_json, atomic_write_text, read_json
from pathmoe.report.aggregate import mean_ci, paired_difference, seed_of, single_run_values
from pathmoe.report.latex import MISSING, Tabular, escape
from pathmoe.report.spec import ReportSpec, TaskColumn

VAL_PPL = TaskColumn("val_ppl", None, "Validation PPL")


@dataclass(frozen=True)
class AnalysisMetric:
    key: str
    label: str
    fname: str  # the analysis JSON under <run>/analysis/
    value: Callable[[dict[str, Any]], float | None]


def degradation_at_p1(d: dict[str, Any]) -> float | None:
    """Perplexity degradation (%) at permutation probability 1 of a robustness.json (None if
    `analysis.permute_p` has no 1.0)."""
    p = [float(x) for x in d["p"]]
    return float(d["degradation_pct"][p.index(1.0)]) if 1.0 in p else None


ANALYSIS_METRICS = (
    AnalysisMetric("routing_entropy_bits", "Routing entropy H (bits)", "paths.json", lambda d: float(d["routing_entropy_bits"])),
    AnalysisMetric("consecutive_layer_correlation", "Consecutive-layer correlation (%)", "paths.json",
                   lambda d: 100.0 * float(d["consecutive_layer_correlation"])),
    AnalysisMetric("unique_paths", "Unique paths", "paths.json", lambda d: float(d["unique_paths"])),
    AnalysisMetric("path_consistency", "Path consistency (%, mean over windows)", "consistency.json",
                   lambda d: 100.0 * float(np.mean(d["path_consistency"]))),
    AnalysisMetric("final_layer_entropy_bits", "Final-layer routing entropy (bits)", "entropy.json",
                   lambda d: float(d["mean_entropy_bits"][-1])),
    AnalysisMetric("degradation_pct_p1", "PPL degradation at p=1 (%)", "robustness.json", degradation_at_p1),
)
ANALYSIS_FILES = tuple(sorted({m.fname for m in ANALYSIS_METRICS}))
ANALYSIS_BY_KEY = {m.key: m for m in ANALYSIS_METRICS}


def metric_labels(spec: ReportSpec) -> dict[str, str]:
    """Every metric key of the stats table, in order, with its printed label."""
    labels = {t.task: f"{t.label} (%)" for t in spec.tasks}
    if spec.tasks:
        labels["avg"] = "Average accuracy (%)"
    labels[VAL_PPL.task] = VAL_PPL.label
    if spec.stats.get("analyses", True):
        labels |= {m.key: m.label for m in ANALYSIS_METRICS}
    return labels


def per_seed_values(spec: ReportSpec, records: pd.DataFrame, runs_dir: Path, base: str,
                    context: str) -> dict[str, dict[str, float | None]]:
    """{metric: {seed: value}} for the seed runs of `base` (None where a value is missing)."""
    with_analyses = spec.stats.get("analyses", True)
    out: dict[str, dict[str, float | None]] = {}
    for run in spec.seed_runs(base):
        seed = seed_of(run)
        values: dict[str, float | None] = single_run_values(records, runs_dir, run, spec.tasks, [VAL_PPL], context)
        if with_analyses:
            for m in ANALYSIS_METRICS:
                p = Path(runs_dir) / run / "analysis" / m.fname
                if not p.is_file():
                    raise FileNotFoundError(f"{context}: {p} not found (run the {m.fname[:-5]} analysis for {run!r})")
                values[m.key] = m.value(read_json(p))
        for key, value in values.items():
            out.setdefault(key, {})[seed] = value
    return out


def stats_table(spec: ReportSpec, records: pd.DataFrame, runs_dir: Path) -> dict[str, Any]:
    """The stats JSON: per row and metric the mean, CI and n, and the paired difference to its reference."""
    cfg = spec.stats
    rows = spec.stats_rows()
    reference = cfg.get("reference", rows[0]["run"])
    labels = metric_labels(spec)
    label_of: dict[str, str] = {}  # a run listed twice (against two references) is named by its first row
    for r in rows:
        label_of.setdefault(r["run"], r["label"])
    values = {}
    for run in dict.fromkeys([r["run"] for r in rows] + [reference] + [r["vs"] for r in rows if "vs" in r]):
        values[run] = per_seed_values(spec, records, runs_dir, run, f"stats row {label_of.get(run, run)!r}")
    data: dict[str, Any] = {"table": "stats", "columns": list(labels), "column_labels": labels,
                            "row_labels": [r["label"] for r in rows], "reference": label_of.get(reference, reference),
                            "rows": {}, "ci95": {}, "n_seeds": {}, "paired": {}}
    for r in rows:
        vals, vs = values[r["run"]], r.get("vs", reference)
        cells = {k: mean_ci([np.nan if v is None else v for v in vals.get(k, {}).values()]) for k in labels}
        data["rows"][r["label"]] = {k: c.mean for k, c in cells.items()}
        data["ci95"][r["label"]] = {k: c.ci95 for k, c in cells.items()}
        data["n_seeds"][r["label"]] = max((c.n for c in cells.values()), default=0)
        if vs != r["run"]:
            data["paired"][r["label"]] = {"vs": label_of.get(vs, vs), **{
                k: paired_difference(vals.get(k, {}), values[vs].get(k, {})) for k in labels}}
    return data


def _num(v: float | None, digits: int = 2) -> str:
    if v is None:
        return MISSING
    return f"{v:,.0f}" if abs(v) >= 1e4 else f"{v:.{digits}f}"


def _p(p: float | None) -> str:
    return MISSING if p is None else (f"{p:.3f}" if p >= 0.001 else f"{p:.1e}")


def stats_lines(data: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    """(metric, system, n, mean ± CI, Δ vs reference ± CI, p) for every metric and row."""
    out = []
    for key, label in data["column_labels"].items():
        for row in data["row_labels"]:
            mean, ci = data["rows"][row][key], data["ci95"][row][key]
            shown = _num(mean) + ("" if ci is None or mean is None else f" ± {_num(ci)}")
            paired = data["paired"].get(row, {})
            test = paired.get(key)
            diff = MISSING if test is None else f"{test['mean_diff']:+.2f} ± {_num(test['ci95'])} vs {paired['vs']}"
            out.append((label, row, str(data["n_seeds"][row]), shown, diff, _p(None if test is None else test["p_value"])))
    return out


def render_stats(spec: ReportSpec, records: pd.DataFrame, runs_dir: Path, out_dir: Path) -> list[Path]:
    """Write <out_dir>/stats.json and stats.tex."""
    data = stats_table(spec, records, Path(runs_dir))
    caption = spec.stats.get("caption", "Statistics over seeds: mean with 95\\% CI half-width, and the paired "
                                        "difference to the reference with its 95\\% CI and paired t-test p-value.")
    tab = Tabular("stats", caption, "llrrrr", [["Metric", "System", "n", "Mean $\\pm$ CI", "$\\Delta$ $\\pm$ CI", "p"]])
    previous = None
    for metric, row, n, mean, diff, p in stats_lines(data):
        if metric != previous and previous is not None:
            tab.add_rule()
        tab.add_row([escape(metric) if metric != previous else "", escape(row), n,
                     mean.replace("±", "$\\pm$"), escape(diff).replace("±", "$\\pm$"), p])
        previous = metric
    out_dir = Path(out_dir)
    paths = [out_dir / "stats.tex", out_dir / "stats.json"]
    atomic_write_text(paths[0], tab.render())
    atomic_write_json(paths[1], data)
    return paths


def markdown_stats(data: dict[str, Any]) -> list[str]:
    """stats.json as Markdown (summary.md)."""
    lines = ["## Statistics over seeds", "",
             f"Mean ± 95% CI half-width over seeds; Δ = paired difference over shared seeds (± its 95% CI) "
             f"against the reference ({data['reference']} unless the row names another), p = paired t-test.", "",
             "| Metric | System | n | Mean ± CI | Δ ± CI | p |", "|---|---|---|---|---|---|"]
    lines += [f"| {' | '.join(cells)} |" for cells in stats_lines(data)]
    return lines
