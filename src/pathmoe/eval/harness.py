"""Run tasks through the real EleutherAI lm-evaluation-harness and turn its results into rows.

We never re-implement a task's scoring: the model instance is wrapped in lm-eval's own `HFLM` and
`lm_eval.simple_evaluate` does the rest, so our numbers are comparable with published ones.
"""

from __future__ import annotations

import logging
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

from pathmoe.eval.metrics import OFFLINE_TASKS


@lru_cache(maxsize=4)
def _build_task_manager(include_path: str | None, include_defaults: bool):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path, include_defaults=include_defaults)


def task_manager(include_path: str | None = None, include_defaults: bool = True):
    """lm-eval's TaskManager, built once per arguments: indexing lm-eval's ~15k built-in task
    YAMLs takes seconds, so offline-only evaluation skips them (`include_defaults=False`).

    The cached builder always gets both arguments positionally: lru_cache keys on how a call is
    spelled, so `task_manager(None)` and `task_manager(None, include_defaults=True)` would
    otherwise index everything twice.
    """
    return _build_task_manager(include_path, include_defaults)


def check_tasks(tasks: list[str]) -> None:
    """Every task must be an offline task or in lm-eval's local index (no network is touched)."""
    if not tasks:
        raise ValueError("eval.tasks is empty: list at least one task")
    hub_tasks = [t for t in tasks if t not in OFFLINE_TASKS]
    index = set(task_manager(None).all_tasks) if hub_tasks else set()
    unknown = [t for t in hub_tasks if t not in index]
    if unknown:
        raise ValueError(f"eval.tasks: unknown task(s) {unknown}: allowed are {list(OFFLINE_TASKS)} "
                         "or any task/group in lm-eval's index (`lm_eval ls tasks`)")


def _parse_results(results: dict[str, dict[str, Any]], tasks: list[str]) -> list[dict]:
    """`{"task", "metric", "value", "stderr"}` rows from lm-eval's `results` block.

    lm-eval keys metrics as "name,filter" (e.g. "acc,none", "exact_match,remove_whitespace"); we keep
    the bare name (first filter wins) and only the requested top-level tasks (not MMLU's 57 subtasks).
    """
    rows = []
    for task in tasks:
        block = results.get(task)
        if block is None:
            raise RuntimeError(f"lm-eval returned no results for task {task!r}")
        seen = set()
        for key, value in block.items():
            if "," not in key or "_stderr," in key or not isinstance(value, (int, float)):
                continue
            metric, filt = key.split(",", 1)
            if metric in seen:
                continue
            seen.add(metric)
            stderr = block.get(f"{metric}_stderr,{filt}")
            stderr = float(stderr) if isinstance(stderr, (int, float)) else math.nan
            rows.append({"task": task, "metric": metric, "value": float(value), "stderr": stderr})
    return rows


def run_tasks(model, tokenizer, tasks: list[str], *, num_fewshot: dict[str, int] | None = None,
              batch_size: int = 16, limit: int | float | None = None,
              include_path: str | Path | None = None, max_length: int | None = None) -> list[dict]:
    """Evaluate `model` on `tasks` with lm-eval; returns `{"task", "metric", "value", "stderr"}` rows.

    Tasks are grouped by their few-shot count (simple_evaluate takes one `num_fewshot` per call);
    `None` keeps each task's own default (0 for the paper's zero-shot tasks).
    """
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    num_fewshot = num_fewshot or {}
    if max_length is None:
        max_length = getattr(model.config, "max_seq_len", None)
    lm = HFLM(pretrained=model, backend="causal", tokenizer=tokenizer, batch_size=batch_size, max_length=max_length)
    offline_only = all(t in OFFLINE_TASKS for t in tasks)
    if offline_only and include_path is None:
        raise ValueError(f"tasks {tasks} are offline tasks: pass include_path=build_offline_tasks(...)")
    tm = task_manager(str(include_path) if include_path else None, include_defaults=not offline_only)
    groups: dict[int | None, list[str]] = {}
    for task in tasks:
        groups.setdefault(num_fewshot.get(task), []).append(task)
    rows: list[dict] = []
    for shots, group in groups.items():
        out = lm_eval.simple_evaluate(model=lm, tasks=group, num_fewshot=shots, limit=limit,
                                      task_manager=tm, log_samples=False, bootstrap_iters=1000)
        rows.extend(_parse_results(out["results"], group))
    return rows
