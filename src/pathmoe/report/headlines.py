"""The paper's headline numbers (quoted in its text, drawn in its figures) beside ours.

The figures have no printed tables, so the text's claims are the only numbers to check them
against: `configs/paper_reference.yaml` `figures:` / `text:` (79% vs 48% consistency, 5328% vs
237% degradation, 11% lower entropy, 22.5x robustness, 0.28% checkpoint-selection std, ...).
`render_headlines` computes each from the same files the figures and tables read and writes
`tables/headlines.json` in the table JSON shape ({"table", "columns", "rows", "paper", "delta",
...}; rows are the reference's sections: fig6a, fig6b, fig7, fig8, text), so summary.md and the
audit's paper tolerance (pathmoe.audit.paper) compare it like any table.

Which rows play which role (docs/reports.md, "Headline numbers"):
- Fig 6a / 6b: the rows labelled with the paper's settings ("1", "2", "16"; "B4");
- Fig 7 / 8: the baseline is the row named Indep-MoE (label or `paper:` starting with "Indep"),
  else the last row; the path-constrained system is the first other row;
- text: the checkpoint-selection std is the mean, over Table 1's rows and seeds, of each run's
  std of the average accuracy across its final 5 checkpoints (eval/selected.json `std_final5`);
  the token count is Table 4's first row's `paths.json` num_tokens.
A claim whose source is not configured or not computable is `None` (printed `--`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from pathmoe.io import atomic_write_json, atomic_write_text, read_json
from pathmoe.report.aggregate import base_run_cells, mean_ci, selection_std
from pathmoe.report.latex import Tabular, escape, fmt_auto, fmt_delta
from pathmoe.report.spec import ReportSpec, Row
from pathmoe.report.stats import ANALYSIS_BY_KEY

SECTIONS = ("fig6a", "fig6b", "fig7", "fig8", "text")
# What each reference key means (printed beside it).
LABELS = {
    "top2_avg": "top-2 average accuracy (%)",
    "k1_avg": "top-1 average accuracy (%)",
    "k16_avg": "top-16 average accuracy (%)",
    "k2_vs_k1_lambada_gain": "LAMBADA gain of top-2 over top-1 (pp)",
    "k2_vs_k1_hellaswag_gain": "HellaSwag gain of top-2 over top-1 (pp)",
    "b4_avg": "block size 4 average accuracy (%)",
    "pathmoe_consistency_pct": "path consistency, path-constrained (%, mean over windows)",
    "indep_consistency_pct": "path consistency, Indep-MoE (%, mean over windows)",
    "indep_degradation_pct_p1": "PPL degradation at p=1, Indep-MoE (%)",
    "pathmoe_degradation_pct_p1": "PPL degradation at p=1, path-constrained (%)",
    "robustness_ratio_p1": "robustness: Indep / path-constrained degradation at p=1 (x)",
    "final_layer_entropy_reduction_pct": "final-layer routing entropy reduction (%)",
    "checkpoint_selection_std_pct": "std of average accuracy across the final 5 checkpoints (pp)",
    "routing_entropy_tokens": "tokens of the routing analysis",
}
# Keys compared relatively by the audit (ratios, large percentages, counts); the rest are
# percentage points.
RELATIVE_KEYS = frozenset({"indep_degradation_pct_p1", "pathmoe_degradation_pct_p1", "robustness_ratio_p1",
                           "routing_entropy_tokens"})


def _row(rows: list[Row], label: str) -> Row | None:
    return next((r for r in rows if label in (r.label, r.paper_label)), None)


def roles(rows: list[Row]) -> tuple[Row | None, Row | None]:
    """(path-constrained system, Indep-MoE baseline) of a Fig 7/8 row list."""
    if len(rows) < 2:
        return None, None
    base = next((r for r in reversed(rows) if r.paper_label.startswith("Indep") or r.label.startswith("Indep")), rows[-1])
    system = next(r for r in rows if r is not base)
    return system, base


class _Sources:
    """Lazy, cached reads of what the claims need."""

    def __init__(self, spec: ReportSpec, records: pd.DataFrame, runs_dir: Path):
        self.spec, self.records, self.runs_dir = spec, records, Path(runs_dir)
        self._cells: dict[str, dict] = {}

    def cell(self, row: Row | None, key: str, context: str) -> float | None:
        """Mean over seeds of a record column (a task or `avg`) of a row's run."""
        if row is None:
            return None
        if row.run not in self._cells:
            self._cells[row.run] = base_run_cells(self.spec, self.records, self.runs_dir, row.run, self.spec.tasks,
                                                  [], context)
        cell = self._cells[row.run].get(key)
        return None if cell is None else cell.mean

    def analysis(self, row: Row | None, fname: str, value: Callable[[dict[str, Any]], float | None]) -> float | None:
        """Mean over seeds of `value(<analysis json>)` for a row's run (None if a seed lacks it)."""
        if row is None:
            return None
        vals = []
        for run in self.spec.seed_runs(row.run):
            p = self.runs_dir / run / "analysis" / fname
            v = value(read_json(p)) if p.is_file() else None
            if v is None:
                return None
            vals.append(float(v))
        return mean_ci(vals).mean


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def headline_values(spec: ReportSpec, records: pd.DataFrame, runs_dir: Path) -> dict[str, dict[str, float | None]]:
    """Our value of every headline key, by section (None where not computable)."""
    src = _Sources(spec, records, runs_dir)
    out: dict[str, dict[str, float | None]] = {s: {} for s in SECTIONS}
    if "fig6a" in spec.figures:
        rows = spec.figure_rows("fig6a")
        k1, k2, k16 = (_row(rows, k) for k in ("1", "2", "16"))
        has = {t.task for t in spec.tasks}
        out["fig6a"] = {"top2_avg": src.cell(k2, "avg", "fig6a"), "k1_avg": src.cell(k1, "avg", "fig6a"),
                        "k16_avg": src.cell(k16, "avg", "fig6a")}
        for task, key in (("lambada_openai", "k2_vs_k1_lambada_gain"), ("hellaswag", "k2_vs_k1_hellaswag_gain")):
            out["fig6a"][key] = _diff(src.cell(k2, task, "fig6a"), src.cell(k1, task, "fig6a")) if task in has else None
    if "fig6b" in spec.figures:
        out["fig6b"] = {"b4_avg": src.cell(_row(spec.figure_rows("fig6b"), "B4"), "avg", "fig6b")}
    if "fig7" in spec.figures:
        system, base = roles(spec.figure_rows("fig7"))

        consistency = ANALYSIS_BY_KEY["path_consistency"].value  # % (mean over windows)
        out["fig7"] = {"pathmoe_consistency_pct": src.analysis(system, "consistency.json", consistency),
                       "indep_consistency_pct": src.analysis(base, "consistency.json", consistency)}
    if "fig8" in spec.figures:
        system, base = roles(spec.figure_rows("fig8"))
        degradation, final_entropy = ANALYSIS_BY_KEY["degradation_pct_p1"].value, ANALYSIS_BY_KEY["final_layer_entropy_bits"].value
        sys_deg, base_deg = (src.analysis(r, "robustness.json", degradation) for r in (system, base))
        sys_h, base_h = (src.analysis(r, "entropy.json", final_entropy) for r in (system, base))
        out["fig8"] = {"indep_degradation_pct_p1": base_deg, "pathmoe_degradation_pct_p1": sys_deg,
                       "robustness_ratio_p1": None if not sys_deg or base_deg is None else base_deg / sys_deg,
                       "final_layer_entropy_reduction_pct": (None if not base_h or sys_h is None
                                                             else 100.0 * (1.0 - sys_h / base_h))}
    if "table1" in spec.tables:
        stds = [selection_std(spec, records, runs_dir, r.run, f"table1 row {r.label!r}") for r in spec.rows("table1")]
        known = [s.mean for s in stds if s.mean is not None]
        out["text"]["checkpoint_selection_std_pct"] = float(np.mean(known)) if len(known) == len(stds) else None
    if "table4" in spec.tables and spec.rows("table4"):
        first = spec.rows("table4")[0]
        out["text"]["routing_entropy_tokens"] = src.analysis(first, "paths.json", lambda d: float(d["num_tokens"]))
    return out


def render_headlines(spec: ReportSpec, records: pd.DataFrame, runs_dir: Path, out_dir: Path,
                     reference: dict[str, Any]) -> list[Path]:
    """Write <out_dir>/headlines.json and headlines.tex: every headline key of the reference."""
    ours = headline_values(spec, records, runs_dir)
    paper = {s: dict((reference.get("figures", {}) if s != "text" else reference).get(s, {}) or {}) for s in SECTIONS}
    columns = list(dict.fromkeys(k for s in SECTIONS for k in paper[s]))
    rows = {s: {k: ours[s].get(k) for k in paper[s]} for s in SECTIONS}
    data = {"table": "headlines", "columns": columns, "column_labels": {k: LABELS.get(k, k) for k in columns},
            "row_labels": list(SECTIONS), "rows": rows, "paper": paper,
            "delta": {s: {k: _diff(rows[s][k], paper[s][k]) for k in paper[s]} for s in SECTIONS},
            "paper_labels": {}}
    tab = Tabular("headlines", "The paper's headline numbers (text and figures) beside ours.", "llrrr",
                  [["Source", "Claim", "Ours", "Paper", "$\\Delta$"]])
    for s in SECTIONS:
        for k in paper[s]:
            tab.add_row([escape(s), escape(LABELS.get(k, k)), fmt_auto(rows[s][k]), fmt_auto(paper[s][k]),
                         fmt_delta(data["delta"][s][k])])
    out_dir = Path(out_dir)
    paths = [out_dir / "headlines.tex", out_dir / "headlines.json"]
    atomic_write_text(paths[0], tab.render())
    atomic_write_json(paths[1], data)
    return paths


def markdown_headlines(data: dict[str, Any]) -> list[str]:
    """headlines.json as Markdown: one line per claim (ours | paper | Δ)."""
    lines = ["## Headline numbers of the text", "", "| Source | Claim | Ours | Paper | Δ |", "|---|---|---|---|---|"]
    for s in data["row_labels"]:
        for k, paper in data["paper"][s].items():
            lines.append(f"| {s} | {data['column_labels'].get(k, k)} | {fmt_auto(data['rows'][s].get(k))} | "
                         f"{fmt_auto(paper)} | {fmt_delta(data['delta'][s].get(k))} |")
    return lines
