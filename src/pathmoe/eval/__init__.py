"""Evaluation stage: lm-eval benchmarks, offline tasks, validation perplexity, records, selection.

Public API (see docs/evaluation.md): `evaluate_run`, `build_offline_tasks`, `validation_perplexity`,
`run_tasks`, `select_checkpoint`, `collect_records`, `PAPER_METRICS`.
"""

from pathmoe.eval.checkpoint import load_checkpoint
from pathmoe.eval.harness import check_tasks, run_tasks
from pathmoe.eval.metrics import OFFLINE_TASKS, PAPER_METRICS, RECORD_COLUMNS, paper_metric
from pathmoe.eval.offline import build_offline_tasks
from pathmoe.eval.perplexity import validation_perplexity
from pathmoe.eval.records import collect_records, read_records, select_checkpoint
from pathmoe.eval.run import evaluate_run

__all__ = [
    "OFFLINE_TASKS", "PAPER_METRICS", "RECORD_COLUMNS", "build_offline_tasks", "check_tasks", "collect_records",
    "evaluate_run", "load_checkpoint", "paper_metric", "read_records", "run_tasks", "select_checkpoint",
    "validation_perplexity",
]
