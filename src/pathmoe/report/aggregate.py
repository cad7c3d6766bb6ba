"""From tidy eval records to one number (mean, 95% CI, n seeds) per table cell.

Accuracy cells use each run's selected checkpoint (eval/selected.json: best average accuracy among
the final 5 exports, as in the paper); when that file is missing the eval stage's
`select_checkpoint` is applied to the run's records. Training-side columns (throughput, memory)
and val_ppl use the selected step when a record exists there, else the latest step. Seeds of a
base run are averaged; with >1 seed the CI half-width is t_{0.975, n-1} * sd / sqrt(n).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd
from scipy import stats

from pathmoe.io import read_json
from pathmoe.report.spec import ReportSpec, TaskColumn

# Columns printed in natural units; every other task is an accuracy printed in percent.
NATURAL_UNITS = {"val_ppl", "throughput_ktok_s", "peak_mem_gib"}
LOWER_IS_BETTER = {"val_ppl", "peak_mem_gib"}


@dataclass(frozen=True)
class Cell:
    mean: float | None
    ci95: float | None = None
    n: int = 0


def load_records(path: str | Path) -> pd.DataFrame:
    """Read results/records.csv (or one run's eval/records.csv), checked against the records contract."""
    from pathmoe.eval.records import read_records

    return read_records(path)


def scale_factor(task: str) -> float:
    return 1.0 if task in NATURAL_UNITS else 100.0


def mean_ci(values: Sequence[float]) -> Cell:
    vals = [float(v) for v in values if v is not None and not math.isnan(v)]
    if len(vals) != len(values) or not vals:
        return Cell(None, None, len(vals))
    n = len(vals)
    mean = sum(vals) / n
    if n == 1:
        return Cell(mean, None, 1)
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    return Cell(mean, float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n), n)


def run_records(records: pd.DataFrame, run: str, context: str) -> pd.DataFrame:
    sub = records[records["run"].astype(str) == run]
    if sub.empty:
        raise ValueError(f"records have no rows for run {run!r} ({context})")
    return sub


def lookup(sub: pd.DataFrame, col: TaskColumn) -> pd.DataFrame:
    """Records of one column; metric None accepts the task's only metric (several: an error)."""
    hit = sub[sub["task"] == col.task]
    if col.metric is not None:
        hit = hit[hit["metric"] == col.metric]
    elif hit["metric"].nunique() > 1:
        raise ValueError(f"task {col.task!r} has several metrics {sorted(hit['metric'].unique())}; name one in the report spec")
    return hit


def selected_step(sub: pd.DataFrame, runs_dir: Path | None, run: str) -> int | None:
    """The run's selected checkpoint step: selected.json, else the eval stage's own rule on the records.

    The fallback is `pathmoe.eval.records.select_checkpoint` itself, so a run gets the same step
    whether or not its selected.json exists. None when no step has every task's accuracy.
    """
    from pathmoe.eval.records import select_checkpoint

    if runs_dir is not None:
        sel = Path(runs_dir) / run / "eval" / "selected.json"
        if sel.is_file():
            return int(read_json(sel)["step"])
    try:
        return int(select_checkpoint(sub)["step"])
    except ValueError:  # no accuracy rows, or no step holding all tasks: extras use the latest step
        return None


def selection_std(spec: ReportSpec, records: pd.DataFrame, runs_dir: Path | None, base: str, context: str) -> Cell:
    """Std (percentage points) of the average accuracy across each seed's final 5 checkpoints.

    The spread checkpoint selection chooses from (the paper: 0.28%), from eval/selected.json's
    `std_final5`, else the eval stage's own `select_checkpoint` on the records; mean ± CI over seeds.
    Undefined (None) for a run that exported a single checkpoint.
    """
    from pathmoe.eval.records import select_checkpoint

    vals = []
    for run in spec.seed_runs(base):
        path = Path(runs_dir) / run / "eval" / "selected.json" if runs_dir is not None else None
        try:
            sel = read_json(path) if path is not None and path.is_file() else select_checkpoint(
                run_records(records, run, context))
        except ValueError:  # no accuracy records to select from
            sel = {}
        std = sel.get("std_final5")
        if len(sel.get("candidates", [None, None])) < 2:  # one checkpoint: no spread to report
            std = None
        vals.append(math.nan if std is None else 100.0 * float(std))
    return mean_ci(vals)


def single_run_values(records: pd.DataFrame, runs_dir: Path | None, run: str,
                      tasks: Sequence[TaskColumn], extras: Sequence[TaskColumn], context: str) -> dict[str, float | None]:
    """Printed-unit values of one (seed) run: tasks at the selected step, `avg`, and extras."""
    sub = run_records(records, run, context)
    step = selected_step(sub, runs_dir, run)
    out: dict[str, float | None] = {}
    for col in tasks:
        hit = lookup(sub, col)
        hit = hit[hit["step"] == step]
        out[col.task] = float(hit["value"].iloc[0]) * scale_factor(col.task) if len(hit) else None
    if tasks:
        accs = [out[c.task] for c in tasks]
        out["avg"] = None if any(v is None for v in accs) else sum(accs) / len(accs)
    for col in extras:
        hit = lookup(sub, col)
        at_sel = hit[hit["step"] == step]
        hit = at_sel if len(at_sel) else hit.sort_values("step").tail(1)
        out[col.task] = float(hit["value"].iloc[0]) * scale_factor(col.task) if len(hit) else None
    return out


def base_run_cells(spec: ReportSpec, records: pd.DataFrame, runs_dir: Path | None, base: str,
                   tasks: Sequence[TaskColumn], extras: Sequence[TaskColumn], context: str) -> dict[str, Cell]:
    """Mean ± CI over the seed runs of `base` for every column key (tasks, avg, extras)."""
    per_seed = [single_run_values(records, runs_dir, r, tasks, extras, context) for r in spec.seed_runs(base)]
    keys: Iterable[str] = per_seed[0].keys()
    return {k: mean_ci([s[k] if s[k] is not None else math.nan for s in per_seed]) for k in keys}


def best_labels(values: dict[str, float | None], col: str, ndigits: int = 2) -> set[str]:
    """Row labels holding the best printed value of a column (ties all bold)."""
    shown = {lab: round(v, ndigits) for lab, v in values.items() if v is not None}
    if len(shown) < 2:
        return set()
    best = (min if col in LOWER_IS_BETTER else max)(shown.values())
    return {lab for lab, v in shown.items() if v == best}


def seed_of(run: str) -> str:
    """The seed suffix of a run id (`<base>_s<seed>`), which pairs runs of two systems."""
    return run.rsplit("_s", 1)[-1]


def paired_difference(a: dict[str, float | None], ref: dict[str, float | None]) -> dict[str, float] | None:
    """Paired t-test of per-seed values `a` against `ref` (both keyed by seed) over their shared seeds.

    Returns {"n", "mean_diff", "ci95" (t half-width of the mean difference), "p_value"}; None with
    fewer than two shared seeds. Identical differences (no variance) give p = 0 (or 1 when all are 0).
    """
    shared = sorted(s for s in a if s in ref and a[s] is not None and ref[s] is not None
                    and not math.isnan(a[s]) and not math.isnan(ref[s]))
    if len(shared) < 2:
        return None
    diffs = [a[s] - ref[s] for s in shared]
    n = len(diffs)
    if all(d == diffs[0] for d in diffs):  # no variance: the t statistic is undefined
        p, ci = (0.0 if diffs[0] != 0 else 1.0), 0.0
    else:
        p = float(stats.ttest_rel([a[s] for s in shared], [ref[s] for s in shared]).pvalue)
        mean = sum(diffs) / n
        sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
        ci = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return {"n": n, "mean_diff": sum(diffs) / n, "ci95": ci, "p_value": p}


def paired_avg_test(spec: ReportSpec, records: pd.DataFrame, runs_dir: Path | None, base: str, reference: str,
                    tasks: Sequence[TaskColumn], context: str) -> dict[str, float] | None:
    """Paired t-test over shared seeds of `base`'s average accuracy against `reference`'s.

    Seeds pair the runs (same data order and initial seed), so the test removes seed-to-seed
    variance that unpaired CIs keep. None with fewer than two shared seeds.
    """
    def per_seed(b: str) -> dict[str, float | None]:
        return {seed_of(r): single_run_values(records, runs_dir, r, tasks, [], context)["avg"]
                for r in spec.seed_runs(b)}

    return paired_difference(per_seed(base), per_seed(reference))
