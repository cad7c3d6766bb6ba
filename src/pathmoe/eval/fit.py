"""Examples longer than the model's context: found before scoring, skipped and counted.

lm-eval truncates a log-likelihood request's context from the left by itself, but a request
whose answer (continuation) alone exceeds the model's `max_length` ends in a bare
`AssertionError` deep inside the harness. Real benchmarks have such answers for small-context
models (a PIQA solution of 139 tokens for a 128-token model). So before scoring, the tasks run
once through lm-eval with `RequestProbe`, a stand-in LM that answers nothing but measures every
request with the real model's own tokenization. Documents with an answer that does not fit are
left out of the real run (lm-eval's `samples` argument), and the counts go into the records:
`examples` (scored), `skipped_examples`, `truncated_examples` (context cut from the left).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from lm_eval.api.model import LM

# Requests whose answer is this close to max_length are skipped too: few-shot contexts drawn
# for the real run may tokenize the answer's first token differently at the boundary.
ANSWER_MARGIN = 1


@dataclass
class TaskFit:
    """Per leaf task: the documents seen, the ones to skip, the ones lm-eval will left-truncate."""

    seen: set[int] = field(default_factory=set)
    skipped: set[int] = field(default_factory=set)
    truncated: set[int] = field(default_factory=set)

    def kept(self) -> list[int]:
        return sorted(self.seen - self.skipped)


class IndexList(list):
    """lm-eval's `samples` for one task: a list (it indexes it) with set-speed `in` (it tests
    every document against it, which is quadratic on a plain list of 10k indices)."""

    def __init__(self, items: list[int]) -> None:
        super().__init__(items)
        self._set = frozenset(items)

    def __contains__(self, item: object) -> bool:
        return item in self._set


class RequestProbe(LM):
    """Measures every request of an lm-eval run with `hflm`'s tokenization; scores nothing."""

    def __init__(self, hflm: Any) -> None:
        super().__init__()
        self.hflm = hflm
        self.max_length = int(hflm.max_length)
        self.fits: dict[str, TaskFit] = defaultdict(TaskFit)

    @property
    def device(self) -> Any:
        return self.hflm.device

    def _measure(self, request: Any) -> None:
        context, continuation = request.args
        if context == "":
            cont = self.hflm.tok_encode(continuation, add_special_tokens=False)
            ctx = [self.hflm.prefix_token_id]
        else:
            ctx, cont = self.hflm._encode_pair(context, continuation)
        fit = self.fits[request.task_name]
        fit.seen.add(request.doc_id)
        if len(cont) > self.max_length - ANSWER_MARGIN:
            fit.skipped.add(request.doc_id)
        elif len(ctx) + len(cont) > self.max_length + 1:  # the model reads at most max_length tokens
            fit.truncated.add(request.doc_id)

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        for request in requests:
            self._measure(request)
        return [(0.0, False)] * len(requests)

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        for request in requests:  # lm-eval scores any length in windows: nothing to skip
            self.fits[request.task_name].seen.add(request.doc_id)
        return [0.0] * len(requests)

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        for request in requests:  # lm-eval left-truncates generation prompts itself
            self.fits[request.task_name].seen.add(request.doc_id)
        return [""] * len(requests)


def leaf_tasks(task: str, group_subtasks: dict[str, list[str]]) -> list[str]:
    """The tasks that hold documents under `task` (itself, or a group's subtasks, recursively)."""
    subtasks = group_subtasks.get(task)
    if not subtasks:
        return [task]
    return [leaf for sub in subtasks for leaf in leaf_tasks(sub, group_subtasks)]


def count_rows(tasks: list[str], fits: dict[str, TaskFit], group_subtasks: dict[str, list[str]]) -> list[dict]:
    """`examples`, `skipped_examples`, `truncated_examples` rows per requested task (groups summed)."""
    rows = []
    for task in tasks:
        leaves = [fits[leaf] for leaf in leaf_tasks(task, group_subtasks) if leaf in fits]
        counts = {"examples": sum(len(f.kept()) for f in leaves),
                  "skipped_examples": sum(len(f.skipped) for f in leaves),
                  "truncated_examples": sum(len(f.truncated - f.skipped) for f in leaves)}
        rows += [{"task": task, "metric": k, "value": float(v), "stderr": float("nan")} for k, v in counts.items()]
    return rows


def check_not_all_skipped(fits: dict[str, TaskFit], max_length: int) -> None:
    """A task whose every example is too long has no score: a one-line error naming it."""
    for task, fit in sorted(fits.items()):
        if fit.seen and not fit.kept():
            raise ValueError(f"task {task!r}: all {len(fit.seen)} examples have an answer longer than the "
                             f"model's context ({max_length} tokens); nothing left to score")
