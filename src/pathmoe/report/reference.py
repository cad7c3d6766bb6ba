"""The paper's reported numbers and the comparison of a reproduced table against them.

The reference lives in the repo's configs/paper_reference.yaml (a human-checked transcription), not
in package data, so that fixing a transcription error never needs a reinstall. Lookup order:
explicit path, $PATHMOE_PAPER_REFERENCE, then <repo>/configs/paper_reference.yaml found relative
to this file (src layout, editable install) or the working directory.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import yaml

ENV_VAR = "PATHMOE_PAPER_REFERENCE"


class Comparison(NamedTuple):
    row: str
    col: str
    ours: float | None
    paper: float
    delta: float | None  # ours - paper, in the table's printed units
    within: bool


def default_reference_path() -> Path:
    """Where the reference file is looked for when no path is given."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    for root in (Path(__file__).resolve().parents[3], Path.cwd()):
        candidate = root / "configs" / "paper_reference.yaml"
        if candidate.is_file():
            return candidate
    return Path(__file__).resolve().parents[3] / "configs" / "paper_reference.yaml"


def load_reference(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Load the paper's numbers: {table: {row label: {column key: value}}, "figures": ..., "text": ...}."""
    p = Path(path) if path is not None else default_reference_path()
    if not p.is_file():
        raise FileNotFoundError(f"paper reference not found: {p} (pass a path or set ${ENV_VAR})")
    data = yaml.safe_load(p.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"paper reference {p}: expected a mapping of tables, got {type(data).__name__}")
    return data


def compare_with_paper(table_json: Mapping[str, Any], reference: Mapping[str, Any],
                       tolerance: float | Mapping[str, float]) -> list[Comparison]:
    """Compare every reproduced cell that the paper also reports.

    `table_json` is a table's <name>.json (its "rows" and "table" keys); `reference` is either the
    whole reference (indexed by table_json["table"]) or that table's {row: {col: value}} mapping.
    `tolerance` is absolute in printed units (percent points for accuracies), one number or per
    column key (missing columns: exact). A cell we did not reproduce gives ours=None, within=False.
    """
    name = table_json.get("table")
    ref = reference.get(name, reference) if name else reference
    paper_labels = table_json.get("paper_labels", {})
    out: list[Comparison] = []
    for label, cols in table_json["rows"].items():
        paper_row = ref.get(paper_labels.get(label, label))
        if not isinstance(paper_row, Mapping):
            continue
        for col, paper in paper_row.items():
            if not isinstance(paper, (int, float)):
                continue
            ours = cols.get(col)
            tol = tolerance.get(col, 0.0) if isinstance(tolerance, Mapping) else float(tolerance)
            if ours is None or (isinstance(ours, float) and math.isnan(ours)):
                out.append(Comparison(label, col, None, float(paper), None, False))
                continue
            delta = float(ours) - float(paper)
            out.append(Comparison(label, col, float(ours), float(paper), delta, abs(delta) <= tol + 1e-12))
    return out
