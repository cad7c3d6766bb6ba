"""The validated `report:` section: which runs feed which table and figure.

Reports never read the experiment YAML; the lead's config stage validates the section with
`parse_report_spec` and writes `ReportSpec.to_json()`, which every report command reads back. A row
names a *base* run; `run_groups` maps it to its seed runs (default: the base run alone) so tables
can aggregate mean ± 95% CI over seeds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

import jsonschema
import yaml

TABLES = tuple(f"table{i}" for i in range(1, 10))
FIGURES = ("fig3", "fig4", "fig5", "fig6a", "fig6b", "fig7", "fig8")
FIG3_DEFAULT_TASKS = ("hellaswag", "arc_easy")  # the paper's Fig 3, when `figures.fig3.tasks` is absent
# Tables the paper reports numbers for (they also get a <name>_vs_paper.tex comparison).
TABLES_WITH_REFERENCE = ("table1", "table2", "table3", "table4", "table6", "table7", "table8")
# Artifacts the headline numbers of the text are computed from (pathmoe.report.headlines): a report
# with any of them also writes tables/headlines.json.
HEADLINE_SOURCES = ("fig6a", "fig6b", "fig7", "fig8", "table1", "table4")
# Tables/figures whose rows are not runs (table9 is generated from the category classifier).
RUNLESS = {"table9"}
# Training-side columns of Table 1 (metric None: the single metric the eval stage writes).
DEFAULT_EXTRA_COLUMNS = (
    {"task": "val_ppl", "metric": None, "label": "PPL"},
    {"task": "throughput_ktok_s", "metric": None, "label": "Throughput", "unit": "(k tok/s/GPU)"},
    {"task": "peak_mem_gib", "metric": None, "label": "Memory", "unit": "(GiB)"},
)
DEFAULT_ROW_HEADER = {"table2": ("Category", "Task"), "table3": ("# Paths",), "table4": ("Empirical Metric",),
                "table5": ("Hyperparameter",), "table6": ("Routing", "LBL"), "table9": ("Category", "Type", "Examples")}


@dataclass(frozen=True)
class TaskColumn:
    """One metric column: lm-eval task name (the column key), metric name, printed label."""

    task: str
    metric: str | None
    label: str
    unit: str = ""
    category: str = ""


@dataclass(frozen=True)
class Row:
    label: str
    run: str
    cells: tuple[str, ...] = ()
    paper: str | None = None  # reference row label when it differs from `label`

    @property
    def paper_label(self) -> str:
        return self.paper or self.label


@dataclass(frozen=True)
class Group:
    label: str | None
    rows: tuple[Row, ...]


@dataclass
class ReportSpec:
    tasks: list[TaskColumn]
    tasks_16b: list[TaskColumn]
    tables: dict[str, dict[str, Any]]
    figures: dict[str, dict[str, Any]]
    run_groups: dict[str, list[str]] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    # dataset key -> {"label": paper name, "tokenizer_label": printed tokenizer} (Table 5)
    dataset_names: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def has_headlines(self) -> bool:
        return any(n in self.figures or n in self.tables for n in HEADLINE_SOURCES)

    @property
    def stats(self) -> dict[str, Any]:
        """The `stats` section (statistics over seeds, pathmoe.report.stats); {} when absent."""
        return dict(self.raw.get("stats", {}))

    def stats_rows(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.stats.get("rows", [])]

    def stats_runs(self) -> list[str]:
        """Every base run the stats section reads: its rows, their `vs` and the reference."""
        rows = self.stats_rows()
        if not rows:
            return []
        refs = [self.stats.get("reference", rows[0]["run"])] + [r["vs"] for r in rows if "vs" in r]
        return list(dict.fromkeys([r["run"] for r in rows] + refs))

    def seed_runs(self, base: str) -> list[str]:
        """Run names (one per seed) that a row naming `base` aggregates over."""
        return list(self.run_groups.get(base, [base]))

    def groups(self, table: str) -> list[Group]:
        """Rows of `table` as groups; a flat `rows:` list is one unlabeled group."""
        cfg = self.tables.get(table)
        if cfg is None:
            raise ValueError(f"report.tables.{table}: not configured (configured: {sorted(self.tables)})")
        if "groups" in cfg:
            return [Group(g.get("label"), tuple(_row(r) for r in g["rows"])) for g in cfg["groups"]]
        return [Group(None, tuple(_row(r) for r in cfg.get("rows", [])))]

    def rows(self, table: str) -> list[Row]:
        return [r for g in self.groups(table) for r in g.rows]

    def figure_rows(self, figure: str) -> list[Row]:
        return [_row(r) for r in self.figure(figure).get("rows", [])]

    def figure(self, figure: str) -> dict[str, Any]:
        if figure not in self.figures:
            raise ValueError(f"report.figures.{figure}: not configured (configured: {sorted(self.figures)})")
        return self.figures[figure]

    def row_header(self, table: str) -> tuple[str, ...]:
        return tuple(self.tables.get(table, {}).get("row_header", DEFAULT_ROW_HEADER.get(table, ("Routing",))))

    def extra_columns(self, table: str) -> list[TaskColumn]:
        cfg = self.tables.get(table, {})
        default = DEFAULT_EXTRA_COLUMNS if table == "table1" else ()
        return [_task(t, f"report.tables.{table}.extra_columns") for t in cfg.get("extra_columns", default)]

    def to_json(self) -> str:
        return json.dumps(self.raw | {"run_groups": self.run_groups, "dataset_names": self.dataset_names},
                          indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> "ReportSpec":
        """Parse a spec JSON string or file (no run-name check: the writer already did it)."""
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            path = Path(text_or_path)
            if not path.is_file():
                raise FileNotFoundError(f"report spec file not found: {path}")
            text = path.read_text()
        raw = json.loads(text)
        return parse_report_spec(raw, None)


def _row(r: dict[str, Any]) -> Row:
    return Row(r["label"], r["run"], tuple(str(c) for c in r.get("cells", ())), r.get("paper"))


def _task(t: dict[str, Any], where: str = "report.tasks") -> TaskColumn:
    """A metric column; a paper task must use the metric the paper reports (and selection uses)."""
    from pathmoe.eval.metrics import PAPER_METRICS

    expected = PAPER_METRICS.get(t["task"])
    if expected is not None and t.get("metric") != expected:
        raise ValueError(f"{where}: task {t['task']} has metric {t.get('metric')!r}, but the paper reports and "
                         f"checkpoint selection uses {expected!r} (pathmoe.eval.metrics.PAPER_METRICS)")
    return TaskColumn(t["task"], t.get("metric"), t.get("label", t["task"]), t.get("unit", ""), t.get("category", ""))


def load_schema() -> dict[str, Any]:
    """The JSON-schema fragment of the report section (for the top-level config schema too)."""
    return yaml.safe_load(resources.files("pathmoe.report").joinpath("schema.yaml").read_text())


def parse_report_spec(report_cfg: dict, run_names: set[str] | None,
                      run_groups: Mapping[str, Sequence[str]] | None = None,
                      dataset_names: Mapping[str, Mapping[str, str]] | None = None) -> ReportSpec:
    """Validate the report section; raise ValueError with one line naming the bad key.

    `run_names`: every run the experiment defines (base names and/or seed-expanded names);
    None skips the check (used when re-reading an already validated spec). `run_groups`: base run
    -> its seed runs, as the config stage expanded them; merged over the section's own
    `run_groups` so rows can name the base run. `dataset_names`: each dataset's printed names
    (`datasets.<name>.label` / `tokenizer_label` of the experiment config), merged likewise.
    """
    if not isinstance(report_cfg, dict):
        raise ValueError(f"report: expected a mapping, got {type(report_cfg).__name__}")
    errors = sorted(jsonschema.Draft202012Validator(load_schema()).iter_errors(report_cfg), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        where = "report" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.path)
        raise ValueError(f"{where}: {e.message}")
    groups = {k: list(v) for k, v in report_cfg.get("run_groups", {}).items()}
    groups.update({k: list(v) for k, v in (run_groups or {}).items()})
    if run_names is not None:
        known = set(run_names) | set(groups)
        for base, members in groups.items():
            for m in members:
                if m not in run_names:
                    raise ValueError(f"report.run_groups.{base}: unknown run {m!r} (known runs: {sorted(run_names)})")
    tables = report_cfg.get("tables", {})
    for name, cfg in tables.items():
        _check_table(name, cfg, None if run_names is None else known)
    for name, cfg in report_cfg.get("figures", {}).items():
        _check_rows(f"report.figures.{name}.rows", cfg.get("rows", []), None if run_names is None else known, 0)
        if "rows" not in cfg:
            raise ValueError(f"report.figures.{name}: 'rows' is required (list of {{label, run}})")
    if "stats" in report_cfg and run_names is not None:
        st = report_cfg["stats"]
        for i, r in enumerate(st["rows"]):
            for key in ("run", "vs"):
                if key in r and r[key] not in known:
                    raise ValueError(f"report.stats.rows[{i}].{key}: unknown run {r[key]!r} (known runs: {sorted(known)})")
        if "reference" in st and st["reference"] not in known:
            raise ValueError(f"report.stats.reference: unknown run {st['reference']!r} (known runs: {sorted(known)})")
        labels = [r["label"] for r in st["rows"]]
        if len(set(labels)) != len(labels):
            raise ValueError(f"report.stats.rows: duplicate row label(s) {sorted({x for x in labels if labels.count(x) > 1})}")
    tasks = [_task(t) for t in report_cfg.get("tasks", [])]
    for name in ("table1", "table3", "table6", "table7", "table8", "fig3", "fig6a", "fig6b"):
        if (name in tables or name in report_cfg.get("figures", {})) and not tasks:
            raise ValueError(f"report.tasks: required by {name} (list of {{task, metric, label}})")
    if "table2" in tables and not report_cfg.get("tasks_16b"):
        raise ValueError("report.tasks_16b: required by table2 (list of {task, metric, label, category})")
    return ReportSpec(tasks=tasks, tasks_16b=[_task(t, "report.tasks_16b") for t in report_cfg.get("tasks_16b", [])],
                      tables=dict(tables), figures=dict(report_cfg.get("figures", {})),
                      run_groups=groups, raw={k: v for k, v in report_cfg.items() if k not in ("run_groups", "dataset_names")},
                      dataset_names={k: dict(v) for k, v in {**report_cfg.get("dataset_names", {}),
                                                              **(dataset_names or {})}.items()})


def _check_table(name: str, cfg: dict[str, Any], known: set[str] | None) -> None:
    if name in RUNLESS:
        return
    if ("rows" in cfg) == ("groups" in cfg):
        raise ValueError(f"report.tables.{name}: give exactly one of 'rows' or 'groups'")
    head_cols = len(cfg.get("row_header", DEFAULT_ROW_HEADER.get(name, ("Routing",))))
    need_cells = head_cols if (head_cols > 1 and name != "table2") else 0
    if "rows" in cfg:
        _check_rows(f"report.tables.{name}.rows", cfg["rows"], known, need_cells)
        labels = [r["label"] for r in cfg["rows"]]
    else:
        labels = []
        for i, g in enumerate(cfg["groups"]):
            _check_rows(f"report.tables.{name}.groups[{i}].rows", g["rows"], known, need_cells)
            labels += [r["label"] for r in g["rows"]]
    dup = {label for label in labels if labels.count(label) > 1}
    if dup:
        raise ValueError(f"report.tables.{name}: duplicate row label(s) {sorted(dup)}; labels key the JSON and the paper reference")


def _check_rows(where: str, rows: list[dict[str, Any]], known: set[str] | None, need_cells: int) -> None:
    for i, r in enumerate(rows):
        if known is not None and r["run"] not in known:
            raise ValueError(f"{where}[{i}].run: unknown run {r['run']!r} (known runs: {sorted(known)})")
        if need_cells and len(r.get("cells", ())) != need_cells:
            raise ValueError(f"{where}[{i}].cells: expected {need_cells} row-header cells (one per row_header entry), got {len(r.get('cells', ()))}")
