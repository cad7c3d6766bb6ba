"""Reproduced tables beside the paper's numbers, with one tolerance rule for every cell.

Tolerance X (`--paper-tolerance X`) means:
- accuracy cells (every lm-eval task column and `avg`, printed in percent): |ours - paper| <= X
  percentage points;
- natural-unit cells (val_ppl, throughput_ktok_s, peak_mem_gib, Table 4's routing statistics, and
  the headline ratios and counts of tables/headlines.json: perplexity degradation at p=1, the
  robustness ratio, the analysis token count): |ours - paper| / |paper| <= X percent (relative); a
  paper value of 0 must be matched exactly. The other headline numbers (consistency %, entropy
  reduction %, accuracies and gains, checkpoint-selection std) are percentage points.
A paper cell the reproduction left empty counts as outside tolerance.
Matching rows/columns to the paper is the report stage's `compare_with_paper`; this module only
finds the tables and applies the rule above.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from pathmoe.io import read_json
from pathmoe.report.aggregate import NATURAL_UNITS
from pathmoe.report.reference import compare_with_paper, load_reference
from pathmoe.report.headlines import RELATIVE_KEYS
from pathmoe.report.tables import TABLE4_COLUMNS

# The report stage's natural-unit columns (printed as is, not in percent), Table 4's statistics and
# the headline numbers compared relatively.
NATURAL_UNIT_COLUMNS = frozenset(NATURAL_UNITS) | {key for key, _ in TABLE4_COLUMNS} | RELATIVE_KEYS


@dataclass(frozen=True)
class CellCheck:
    table: str
    row: str
    col: str
    ours: float | None
    paper: float
    diff: float | None  # ours - paper in printed units
    rel_pct: float | None  # 100 * diff / |paper| (None when paper == 0 or ours missing)
    rule: str  # "pp" (accuracy, percentage points) or "rel%" (relative percent)
    within: bool


def _default_reference(warnings: list[str]) -> dict[str, Any]:
    """The report stage's transcription of the paper (configs/paper_reference.yaml), if present."""
    try:
        return load_reference()
    except (FileNotFoundError, ValueError) as e:
        warnings.append(f"paper reference unavailable: {e}")
        return {}


def check_cell(table: str, row: str, col: str, ours: float | None, paper: float, tolerance: float) -> CellCheck:
    """Apply the tolerance rule of this module's docstring to one cell."""
    rule = "rel%" if col in NATURAL_UNIT_COLUMNS else "pp"
    if ours is None or ours != ours:  # missing or NaN
        return CellCheck(table, row, col, None, paper, None, None, rule, False)
    diff = ours - paper
    rel = 100.0 * diff / abs(paper) if paper else None
    if rule == "pp":
        within = abs(diff) <= tolerance + 1e-9
    else:
        within = diff == 0 if rel is None else abs(rel) <= tolerance + 1e-9
    return CellCheck(table, row, col, ours, paper, diff, rel, rule, within)


def find_tables(directory: str | os.PathLike) -> list[Path]:
    """Every tables/<name>.json under `directory` (reports/tables/ by default; records excluded)."""
    return sorted(p for p in Path(directory).rglob("*.json")
                  if p.parent.name == "tables" and not p.name.endswith(".prov.json") and not p.name.startswith("."))


def compare_tables(directory: str | os.PathLike, tolerance: float,
                   reference: Mapping[str, Any] | None = None) -> tuple[list[CellCheck], list[str]]:
    """Check every table under `directory`; return (cell checks, warnings about skipped tables).

    A table's own "paper" field is its reference; otherwise `reference` (the whole paper
    reference, {table: {row: {col: value}}}; default: the report stage's load_reference()) indexed
    by the table's name.
    """
    if tolerance < 0:
        raise ValueError(f"--paper-tolerance {tolerance}: must be >= 0")
    checks: list[CellCheck] = []
    warnings: list[str] = []
    for path in find_tables(directory):
        table = read_json(path)
        name = str(table.get("table", path.stem)) if isinstance(table, dict) else path.stem
        if not isinstance(table, dict) or not isinstance(table.get("rows"), dict):
            warnings.append(f"{path}: no 'rows' mapping, not compared")
            continue
        own = table.get("paper")
        if not own and reference is None:
            reference = _default_reference(warnings)
        ref = own or (reference or {}).get(name)
        if not ref:
            warnings.append(f"{path}: no paper numbers for {name}, not compared")
            continue
        # A table's own "paper" field is keyed by its row labels already: no label mapping then.
        table = {**table, "table": name, **({"paper_labels": {}} if own else {})}
        # matching only: compare_with_paper's own verdict (infinite tolerance) is replaced by check_cell's
        checks += [check_cell(name, c.row, c.col, c.ours, c.paper, tolerance)
                   for c in compare_with_paper(table, ref, float("inf"))]
    return checks, warnings

