"""Every table of the paper from tidy records, analysis JSONs, run configs and the classifier.

`render_table` writes, per table, <name>.tex (laid out like the paper), <name>.json
({"table", "columns", "column_labels", "rows", "ci95", "n_seeds", "paper", "paper_labels", "delta"};
rows keyed by system label, columns by lm-eval task name / metric key, values in printed units)
and, for tables the paper reports numbers for, <name>_vs_paper.tex (reproduced | paper | Δ per cell).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from pathmoe.io import atomic_write_json, atomic_write_text
from pathmoe.report.aggregate import Cell, base_run_cells, best_labels, mean_ci, paired_avg_test, selection_std
from pathmoe.report.hyperparams import table5_rows
from pathmoe.report.latex import MISSING, Tabular, escape, fmt, fmt_auto, fmt_delta
from pathmoe.report.spec import TABLES, TABLES_WITH_REFERENCE, ReportSpec, TaskColumn

# Tables laid out as systems x report.tasks accuracy columns (+ Avg.), rendered by _metric_table.
METRIC_TABLES = ("table1", "table3", "table6", "table7", "table8")
CAPTIONS = {
    "table1": "Routing strategies at 0.9B: accuracy (\\%), validation perplexity, throughput and peak memory.",
    "table2": "16B models: Indep-MoE vs PathMoE on 12 tasks grouped by category (accuracy, \\%; TriviaQA 5-shot EM).",
    "table3": "Restricting routing to the top-$N$ paths found early in training.",
    "table4": "Empirical routing entropy and expert path space statistics.",
    "table5": "Hyperparameters of both model scales (generated from the resolved run configs).",
    "table6": "Keeping vs removing the load balancing loss (LBL).",
    "table7": "DCLM-Pro dataset at 0.9B.",
    "table8": "PathMoE sharing (block size 4) on top of X-MoE.",
    "table9": "Token category definitions (generated from the classifier).",
}
TABLE4_COLUMNS = (("routing_entropy_bits", "Routing entropy"),
                  ("consecutive_layer_correlation", "Routing decisions correlation for consecutive layers"),
                  ("unique_paths", "Unique paths observed"), ("effective_path_space", "Effective path space $2^H$"),
                  ("num_tokens", "Held-out tokens analysed"))


def render_table(name: str, spec: ReportSpec, records: pd.DataFrame, out_dir: Path, runs_dir: Path,
                 reference: dict) -> list[Path]:
    """Write <name>.tex, <name>.json and (tables 1-4, 6-8) <name>_vs_paper.tex into out_dir."""
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}; allowed: {list(TABLES)}")
    out_dir, runs_dir = Path(out_dir), Path(runs_dir)
    caption = spec.tables.get(name, {}).get("caption", CAPTIONS[name])
    if name in METRIC_TABLES:
        data, tex = _metric_table(name, spec, records, runs_dir, caption,
                                  reference.get("text", {}).get("checkpoint_selection_std_pct"))
    elif name == "table2":
        data, tex = _table2(spec, records, runs_dir, caption)
    elif name == "table4":
        data, tex = _table4(spec, runs_dir, caption)
    elif name == "table5":
        data, tex = _table5(spec, runs_dir, caption)
    else:
        data, tex = _table9(caption)
    if name in TABLES_WITH_REFERENCE:
        _attach_paper(data, reference.get(name, {}))
    data["table"] = name
    paths = [out_dir / f"{name}.tex", out_dir / f"{name}.json"]
    atomic_write_text(paths[0], tex)
    atomic_write_json(paths[1], data)
    if name in TABLES_WITH_REFERENCE:
        paths.append(out_dir / f"{name}_vs_paper.tex")
        atomic_write_text(paths[2], vs_paper_tex(name, data, caption))
    return paths


# --------------------------------------------------------------------------- metric tables
def _cells_for_rows(spec: ReportSpec, name: str, records: pd.DataFrame, runs_dir: Path,
                    tasks: list[TaskColumn], extras: list[TaskColumn]) -> dict[str, dict[str, Cell]]:
    return {row.label: base_run_cells(spec, records, runs_dir, row.run, tasks, extras, f"{name} row {row.label!r}")
            for row in spec.rows(name)}


def _json_skeleton(spec: ReportSpec, name: str, columns: list[str], labels: dict[str, str],
                   cells: dict[str, dict[str, Cell]]) -> dict[str, Any]:
    return {"columns": columns, "column_labels": labels, "row_labels": list(cells),
            "rows": {lab: {c: cells[lab][c].mean for c in columns} for lab in cells},
            "ci95": {lab: {c: cells[lab][c].ci95 for c in columns} for lab in cells},
            "n_seeds": {lab: max((cells[lab][c].n for c in columns), default=0) for lab in cells},
            "paper_labels": {r.label: r.paper_label for r in spec.rows(name)} if name in spec.tables else {}}


def _metric_table(name: str, spec: ReportSpec, records: pd.DataFrame, runs_dir: Path, caption: str,
                  paper_std: float | None = None) -> tuple[dict, str]:
    tasks, extras = spec.tasks, spec.extra_columns(name)
    cells = _cells_for_rows(spec, name, records, runs_dir, tasks, extras)
    columns = [t.task for t in tasks] + ["avg"] + [e.task for e in extras]
    labels = {t.task: t.label for t in tasks} | {"avg": "Avg."} | {e.task: e.label for e in extras}
    data = _json_skeleton(spec, name, columns, labels, cells)
    rows = spec.rows(name)
    paired = {r.label: paired_avg_test(spec, records, runs_dir, r.run, rows[0].run, tasks, f"{name} row {r.label!r}")
              for r in rows[1:]}
    data["paired_vs_first"] = {lab: res for lab, res in paired.items() if res is not None}
    if name == "table1":  # the paper quotes this spread beside Table 1 (section 4.2: 0.28%)
        caption = _with_selection_std(data, spec, records, runs_dir, rows, caption, paper_std)
    bold = {c: best_labels({lab: cells[lab][c].mean for lab in cells}, c) for c in columns}
    head_cols = list(spec.row_header(name))
    units = {e.task: e.unit for e in extras}
    header = [[escape(s) for s in head_cols] + [escape(labels[c]) for c in columns]]
    if any(units.values()):
        header.append([""] * len(head_cols) + [escape(units.get(c, "")) for c in columns])
    tab = Tabular(name, caption, "l" * len(head_cols) + "r" * len(columns), header, wide=len(columns) > 6)
    for group in spec.groups(name):
        if group.label is not None:
            tab.add_group(group.label)
        for row in group.rows:
            head_cells = list(row.cells) if len(head_cols) > 1 else [row.label]
            tab.add_row([escape(s) for s in head_cells] +
                        [fmt(cells[row.label][c].mean, 2, row.label in bold[c], cells[row.label][c].ci95) for c in columns])
    return data, tab.render()


def _with_selection_std(data: dict[str, Any], spec: ReportSpec, records: pd.DataFrame, runs_dir: Path,
                        rows: list, caption: str, paper_std: float | None) -> str:
    """Add each row's checkpoint-selection std (pp, mean over seeds) to the JSON; return the caption
    with their mean, as the paper states it (differences should exceed it)."""
    stds = {r.label: selection_std(spec, records, runs_dir, r.run, f"table1 row {r.label!r}") for r in rows}
    data["std_final5"] = {lab: c.mean for lab, c in stds.items()}
    known = [c.mean for c in stds.values() if c.mean is not None]
    if not known:
        return caption
    paper = "" if paper_std is None else f" (paper: {paper_std:g}\\%)"
    return (f"{caption} Std of the average accuracy across each system's final 5 checkpoints: "
            f"{sum(known) / len(known):.2f} pp on average{paper}.")


def _table2(spec: ReportSpec, records: pd.DataFrame, runs_dir: Path, caption: str) -> tuple[dict, str]:
    """16B: systems are columns, tasks are rows grouped by category (paper layout)."""
    tasks = spec.tasks_16b
    cells = _cells_for_rows(spec, "table2", records, runs_dir, tasks, [])
    columns = [t.task for t in tasks] + ["avg"]
    labels = {t.task: t.label for t in tasks} | {"avg": "Average"}
    data = _json_skeleton(spec, "table2", columns, labels, cells)
    systems = [r.label for r in spec.rows("table2")]
    tab = Tabular("table2", caption, "ll" + "r" * len(systems),
                  [[escape(s) for s in spec.row_header("table2")] + [escape(s) for s in systems]])
    previous = None
    for t in tasks + [TaskColumn("avg", None, "Average")]:
        if t.task == "avg":
            tab.add_rule()
        best = best_labels({s: cells[s][t.task].mean for s in systems}, t.task)
        cat = t.category if t.category != previous else ""
        previous = t.category
        head_cols = [escape(cat), escape(t.label)] if t.task != "avg" else ["Average", ""]
        tab.add_row(head_cols +
                    [fmt(cells[s][t.task].mean, 2, s in best, cells[s][t.task].ci95) for s in systems])
    return data, tab.render()


# --------------------------------------------------------------------------- analysis / config tables
def _table4(spec: ReportSpec, runs_dir: Path, caption: str) -> tuple[dict, str]:
    """Routing entropy, consecutive-layer correlation (%), unique paths, 2^H from paths.json."""
    from pathmoe.io import read_json

    cells: dict[str, dict[str, Cell]] = {}
    for row in spec.rows("table4"):
        per_seed = []
        for run in spec.seed_runs(row.run):
            p = runs_dir / run / "analysis" / "paths.json"
            if not p.is_file():
                raise FileNotFoundError(f"table4 row {row.label!r}: {p} not found (run the paths analysis for {run!r})")
            d = read_json(p)
            per_seed.append({"routing_entropy_bits": float(d["routing_entropy_bits"]),
                             "consecutive_layer_correlation": 100.0 * float(d["consecutive_layer_correlation"]),
                             "unique_paths": float(d["unique_paths"]),
                             "effective_path_space": float(d["effective_path_space"]),
                             "num_tokens": float(d["num_tokens"])})
        cells[row.label] = {k: mean_ci([s[k] for s in per_seed]) for k, _ in TABLE4_COLUMNS}
    columns = [k for k, _ in TABLE4_COLUMNS]
    data = _json_skeleton(spec, "table4", columns, dict(TABLE4_COLUMNS), cells)
    systems = list(cells)
    tab = Tabular("table4", caption, "l" + "r" * len(systems), [[escape(spec.row_header("table4")[0])] + [escape(s) for s in systems]])
    show = {"routing_entropy_bits": lambda v: f"{v:.2f} bits", "consecutive_layer_correlation": lambda v: f"{v:.1f}\\%",
            "unique_paths": lambda v: f"{v:,.0f}", "effective_path_space": lambda v: f"{v:,.0f}",
            "num_tokens": lambda v: f"{v:,.0f}"}
    def shown(cell: Cell, key: str) -> str:  # mean, and the seeds' 95% CI half-width as a subscript
        if cell.mean is None:
            return MISSING
        ci = "" if cell.ci95 is None else f"$_{{\\pm {show[key](cell.ci95).replace(' bits', '')}}}$"
        return show[key](cell.mean) + ci

    for key, label in TABLE4_COLUMNS:
        tab.add_row([label] + [shown(cells[s][key], key) for s in systems])
    return data, tab.render()


def _table5(spec: ReportSpec, runs_dir: Path, caption: str) -> tuple[dict, str]:
    scales = spec.rows("table5")
    sections = table5_rows(spec, runs_dir)  # [(section, [(hyperparameter, [value per scale])])]
    tab = Tabular("table5", caption, "l" + "c" * len(scales),
                  [[escape(spec.row_header("table5")[0])] + [escape(r.label) for r in scales]])
    rows: dict[str, dict[str, str]] = {r.label: {} for r in scales}
    for section, entries in sections:
        tab.add_group(section)
        for key, values in entries:
            tab.add_row([escape(key)] + [escape(v) for v in values])
            for r, v in zip(scales, values):
                rows[r.label][key] = v
    return {"columns": [k for _, e in sections for k, _ in e], "row_labels": list(rows), "rows": rows}, tab.render()


def _table9(caption: str) -> tuple[dict, str]:
    from pathmoe.analysis.categories import CATEGORY_TABLE

    tab = Tabular("table9", caption, "llp{0.55\\linewidth}", [["Category", "Type", "Examples"]])
    rows = {}
    for cat in CATEGORY_TABLE:
        # every example the paper lists (Lexical rows); Pattern rows print their rule
        desc = ", ".join(str(e) for e in cat.get("examples", [])) if cat["type"] == "Lexical" else cat.get("rule", "")
        tab.add_row([escape(cat["name"]), escape(cat["type"]), escape(desc)])
        rows[cat["name"]] = {"type": cat["type"], "examples": list(cat.get("examples", [])), "rule": cat.get("rule", "")}
    return {"columns": ["type", "examples", "rule"], "row_labels": list(rows), "rows": rows}, tab.render()


# --------------------------------------------------------------------------- paper comparison
def _attach_paper(data: dict[str, Any], ref: dict[str, Any]) -> None:
    data["paper"], data["delta"] = {}, {}
    for label, cols in data["rows"].items():
        paper_row = ref.get(data["paper_labels"].get(label, label), {})
        data["paper"][label] = {c: paper_row.get(c) for c in data["columns"]}
        data["delta"][label] = {c: (None if cols.get(c) is None or paper_row.get(c) is None else cols[c] - paper_row[c])
                                for c in data["columns"]}


def vs_paper_tex(name: str, data: dict[str, Any], caption: str) -> str:
    """Long-format comparison: one line per (system, column) with reproduced | paper | Δ."""
    tab = Tabular(f"{name}_vs_paper", f"{caption} Reproduced vs paper.", "llrrr",
                  [["System", "Column", "Reproduced", "Paper", "$\\Delta$"]])
    for label in data["row_labels"]:
        tab.add_group(label)
        for c in data["columns"]:
            tab.add_row(["", escape(data["column_labels"].get(c, c)), fmt_auto(data["rows"][label][c]),
                         fmt_auto(data["paper"][label][c]), fmt_delta(data["delta"][label][c])])
    return tab.render()
