"""The tidy eval table (one row per run x checkpoint x task x metric) and model selection.

Every report reads the same `records.csv` schema (`RECORD_COLUMNS`); selection follows the paper:
"the checkpoint with the highest average accuracy from the final 5 checkpoints", averaging each
task's paper metric, and reports the spread across those 5 (the paper quotes 0.28%).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from pathmoe.eval.metrics import NON_TASK_ROWS, PEAK_MEM, RECORD_COLUMNS, THROUGHPUT, paper_metric
from pathmoe.io import atomic_path, read_json

RUN_KEYS = ("run", "variant", "scale", "dataset", "seed")


def to_frame(rows: list[dict], run_info: dict, step: int) -> pd.DataFrame:
    """Stamp `{"task", "metric", "value", "stderr"}` rows with the run's identity and `step`."""
    ident = {k: run_info[k] for k in RUN_KEYS}
    frame = pd.DataFrame([{**ident, "step": step, **r} for r in rows], columns=list(RECORD_COLUMNS))
    return frame


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(path)


def read_records(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"eval records not found: {path} (run `pathmoe eval run` first)")
    frame = pd.read_csv(path)
    missing = [c for c in RECORD_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing record column(s) {missing}; expected {list(RECORD_COLUMNS)}")
    return frame[list(RECORD_COLUMNS)]


def training_rows(run_dir: str | Path) -> tuple[int, list[dict]] | None:
    """Throughput (k tok/s/GPU) and peak memory (GiB) from train_summary.json, at its final step."""
    path = Path(run_dir) / "train_summary.json"
    if not path.is_file():
        return None
    summary = read_json(path)
    for key in ("steps", "tokens_per_s_per_gpu", "peak_mem_gib"):
        if key not in summary:
            raise ValueError(f"{path}: missing key {key!r}")
    rows = [
        {"task": THROUGHPUT, "metric": "ktok_s", "value": float(summary["tokens_per_s_per_gpu"]) / 1000.0, "stderr": math.nan},
        {"task": PEAK_MEM, "metric": "gib", "value": float(summary["peak_mem_gib"]), "stderr": math.nan},
    ]
    return int(summary["steps"]), rows


def accuracy_by_step(records: pd.DataFrame) -> pd.DataFrame:
    """[steps x tasks] table of each task's paper metric (rows without every task are dropped)."""
    acc = records[~records["task"].isin(NON_TASK_ROWS)]
    acc = acc[acc["metric"] == acc["task"].map(paper_metric)]
    if acc.empty:
        raise ValueError("records hold no task accuracy (paper metric) rows to select a checkpoint from")
    table = acc.pivot_table(index="step", columns="task", values="value", aggfunc="mean").sort_index()
    return table.dropna()


def select_checkpoint(records: pd.DataFrame, run_dir: str | Path | None = None, final_n: int = 5) -> dict:
    """Best average accuracy among the final `final_n` checkpoints, and their std (sample, ddof=1).

    Returns `{"step", "avg", "std_final5", "candidates": [{"step", "avg"}...], "checkpoint", "tasks"}`;
    accuracies are fractions, `checkpoint` is `<run_dir>/hf/step_<N>` (None without run_dir).
    """
    table = accuracy_by_step(records)
    avg = table.mean(axis=1).iloc[-final_n:]  # mean over tasks per step, final N steps
    best = int(avg[avg == avg.max()].index.max())  # ties go to the most-trained checkpoint
    std = float(avg.std(ddof=1)) if len(avg) > 1 else 0.0
    return {
        "step": best,
        "avg": float(avg.loc[best]),
        "std_final5": std,
        "candidates": [{"step": int(s), "avg": float(v)} for s, v in avg.items()],
        "tasks": list(table.columns),
        "checkpoint": str(Path(run_dir) / "hf" / f"step_{best}") if run_dir is not None else None,
    }


def collect_records(run_dirs: list[str | Path], out_csv: str | Path) -> Path:
    """Concatenate every run's eval/records.csv into one table (`<out>/results/records.csv`)."""
    if not run_dirs:
        raise ValueError("collect_records: no run directories given")
    frames = [read_records(Path(d) / "eval" / "records.csv") for d in run_dirs]
    return write_csv(pd.concat(frames, ignore_index=True), out_csv)
