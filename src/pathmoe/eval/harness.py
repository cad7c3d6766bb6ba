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


@lru_cache(maxsize=8)
def _build_task_manager(include_path: tuple[str, ...] | None, include_defaults: bool):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=list(include_path) if include_path else None, include_defaults=include_defaults)


def task_manager(include_path: str | Path | list[str | Path] | tuple | None = None, include_defaults: bool = True):
    """lm-eval's TaskManager over `include_path` (one folder of task YAMLs or several), built once
    per arguments: indexing lm-eval's ~15k built-in task YAMLs takes seconds, so evaluation that
    needs none of them skips them (`include_defaults=False`).

    The cached builder always gets both arguments positionally, the folders as a tuple of
    strings: lru_cache keys on how a call is spelled, so `task_manager(None)` and
    `task_manager(None, include_defaults=True)` would otherwise index everything twice.
    """
    if include_path is None or isinstance(include_path, (str, Path)):
        paths = (str(include_path),) if include_path else None
    else:
        paths = tuple(str(p) for p in include_path) or None
    return _build_task_manager(paths, include_defaults)


def unknown_tasks(tasks: list[str], task_dirs: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The names in `tasks` that are no offline task, no task or group defined in one of the
    `task_dirs` (folders of lm-eval task YAMLs, eval.task_dirs) and none in lm-eval's own index.

    The one place that decides whether a task name exists; nothing here touches the network.
    lm-eval's ~15k built-in YAMLs are indexed only when a name is not found in `task_dirs`.
    """
    rest = [t for t in tasks if t not in OFFLINE_TASKS]
    if rest and task_dirs:
        local = set(task_manager(list(task_dirs), include_defaults=False).all_tasks)
        rest = [t for t in rest if t not in local]
    if rest:
        index = set(task_manager(None).all_tasks)
        rest = [t for t in rest if t not in index]
    return rest


def check_tasks(tasks: list[str], task_dirs: list[str] | tuple[str, ...] = ()) -> None:
    """Every task must be an offline task, in one of `task_dirs` or in lm-eval's local index."""
    if not tasks:
        raise ValueError("eval.tasks is empty: list at least one task")
    unknown = unknown_tasks(tasks, task_dirs)
    if unknown:
        where = f", a task of eval.task_dirs {list(task_dirs)}" if task_dirs else ""
        raise ValueError(f"eval.tasks: unknown task(s) {unknown}: allowed are {list(OFFLINE_TASKS)}{where} "
                         "or any task/group in lm-eval's index (`lm_eval ls tasks`); add folders of task YAMLs "
                         "with eval.task_dirs")


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


def _checked_hflm(hflm_class: Any) -> Any:
    """HFLM whose over-long answers fail with a one-line error naming the request, not a bare assert
    (the probe skips them beforehand; this is the guard should one slip through), and whose
    request progress bars show only on a terminal (lm-eval enables them explicitly)."""
    from pathmoe.quiet import to_terminal

    class CheckedHFLM(hflm_class):
        def loglikelihood(self, requests, disable_tqdm: bool = False):  # noqa: ANN001, ANN202
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm or not to_terminal())

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):  # noqa: ANN001, ANN202
            return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm or not to_terminal())

        def generate_until(self, requests, disable_tqdm: bool = False):  # noqa: ANN001, ANN202
            return super().generate_until(requests, disable_tqdm=disable_tqdm or not to_terminal())

        def _loglikelihood_tokens(self, requests, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            for (context, continuation), _, cont_enc in requests:
                if len(cont_enc) > self.max_length:
                    raise ValueError(f"an answer of {len(cont_enc)} tokens exceeds the model's context "
                                     f"({self.max_length} tokens): {continuation[:60]!r}")
            return super()._loglikelihood_tokens(requests, *args, **kwargs)

    return CheckedHFLM


# Probe results by (tasks, shots, limit, task folders' content, context length, tokenizer): an eval
# job scores every export of a run with the same tokenizer and tasks, so the requests are measured once.
_PROBED: dict[tuple, tuple[dict, dict]] = {}


def _tokenizer_key(lm: Any) -> str:
    import hashlib

    return hashlib.sha256(lm.tokenizer.backend_tokenizer.to_str().encode()).hexdigest() + f"/{lm.add_bos_token}"


def _probe(lm: Any, group: list[str], shots: int | None, limit: int | float | None, tm: Any,
           folders: list) -> tuple[dict, dict]:
    """Fit of every document of `group` to the model's context, from a scoring-free lm-eval pass."""
    import lm_eval

    from pathmoe.audit.hashing import hash_path
    from pathmoe.eval.fit import RequestProbe

    contents = tuple(hash_path(f)["sha256"] for f in folders)
    key = (tuple(group), shots, limit, contents, lm.max_length, _tokenizer_key(lm))
    if key not in _PROBED:
        probe = RequestProbe(lm)
        out = lm_eval.simple_evaluate(model=probe, tasks=group, num_fewshot=shots, limit=limit, task_manager=tm,
                                      log_samples=False, bootstrap_iters=0)
        _PROBED[key] = (dict(probe.fits), dict(out.get("group_subtasks") or {}))
    return _PROBED[key]


def run_tasks(model, tokenizer, tasks: list[str], *, num_fewshot: dict[str, int] | None = None,
              batch_size: int = 16, limit: int | float | None = None,
              include_path: str | Path | list[str | Path] | None = None, max_length: int | None = None) -> list[dict]:
    """Evaluate `model` on `tasks` with lm-eval; returns `{"task", "metric", "value", "stderr"}` rows
    (`evaluate_tasks` without lm-eval's own results)."""
    return evaluate_tasks(model, tokenizer, tasks, num_fewshot=num_fewshot, batch_size=batch_size, limit=limit,
                          include_path=include_path, max_length=max_length)[0]


def results_json(out: dict[str, Any]) -> dict[str, Any]:
    """lm-eval's results of one `simple_evaluate` call as plain JSON, the content of the results file
    its CLI writes (results, groups, configs, versions, n-shot, n-samples, higher_is_better, config,
    versions of the software); per-document samples are not kept."""
    import json

    from lm_eval.utils import handle_non_serializable

    kept = {key: value for key, value in out.items() if key != "samples"}
    return json.loads(json.dumps(kept, default=handle_non_serializable))


def evaluate_tasks(model, tokenizer, tasks: list[str], *, num_fewshot: dict[str, int] | None = None,
                   batch_size: int = 16, limit: int | float | None = None,
                   include_path: str | Path | list[str | Path] | None = None,
                   max_length: int | None = None) -> tuple[list[dict], list[dict]]:
    """Evaluate `model` on `tasks` with lm-eval: (`{"task", "metric", "value", "stderr"}` rows,
    lm-eval's results JSON of every `simple_evaluate` call, one per few-shot group).

    `include_path`: folders of task YAMLs besides lm-eval's own (the offline tasks' folder,
    eval.task_dirs). Tasks are grouped by their few-shot count (simple_evaluate takes one
    `num_fewshot` per call); `None` keeps each task's own default (0 for the paper's zero-shot
    tasks). Documents whose answer does not fit the model's context (`max_length`, default the
    model's max_seq_len) are skipped (pathmoe.eval.fit); every task also gets `examples`,
    `skipped_examples` and `truncated_examples` rows.
    """
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    from pathmoe.eval.fit import IndexList, check_not_all_skipped, count_rows

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    num_fewshot = num_fewshot or {}
    if max_length is None:
        max_length = getattr(model.config, "max_seq_len", None)
    hf_logger = logging.getLogger("lm_eval.models.huggingface")
    level = hf_logger.level
    hf_logger.setLevel(logging.ERROR)  # its warnings about being handed a model instance: what we mean to do
    try:
        lm = _checked_hflm(HFLM)(pretrained=model, backend="causal", tokenizer=tokenizer, batch_size=batch_size,
                                 max_length=max_length)
    finally:
        hf_logger.setLevel(level)
    folders = [include_path] if isinstance(include_path, (str, Path)) else list(include_path or [])
    if any(t in OFFLINE_TASKS for t in tasks) and not folders:
        raise ValueError(f"tasks {tasks} include offline tasks: pass include_path=build_offline_tasks(...)")
    local = set(task_manager(folders, include_defaults=False).all_tasks) if folders else set()
    tm = task_manager(folders, include_defaults=not all(t in local for t in tasks))
    groups: dict[int | None, list[str]] = {}
    for task in tasks:
        groups.setdefault(num_fewshot.get(task), []).append(task)
    rows: list[dict] = []
    outputs: list[dict] = []
    for shots, group in groups.items():
        fits, group_subtasks = _probe(lm, group, shots, limit, tm, folders)
        check_not_all_skipped(fits, lm.max_length)
        samples = None
        if any(fit.skipped for fit in fits.values()):
            samples = {task: IndexList(fit.kept()) for task, fit in fits.items()}
        out = lm_eval.simple_evaluate(model=lm, tasks=group, num_fewshot=shots, limit=None if samples else limit,
                                      samples=samples, task_manager=tm, log_samples=False, bootstrap_iters=1000)
        rows.extend(_parse_results(out["results"], group))
        rows.extend(count_rows(group, fits, group_subtasks))
        outputs.append(results_json(out))
    return rows, outputs
