"""Evaluation stage: lm-eval benchmarks, offline tasks, validation perplexity, records, selection.

Public API (see docs/evaluation.md): `evaluate_run`, `build_offline_tasks`, `validation_perplexity`,
`run_tasks`, `select_checkpoint`, `collect_records`, `PAPER_METRICS`. Names resolve lazily so
that readers of the records schema (reports) do not import lm-eval and torch.
"""

from pathmoe.lazy import lazy_exports

_EXPORTS = {
    "load_checkpoint": "checkpoint", "check_tasks": "harness", "run_tasks": "harness",
    "OFFLINE_TASKS": "metrics", "PAPER_METRICS": "metrics", "RECORD_COLUMNS": "metrics", "paper_metric": "metrics",
    "build_offline_tasks": "offline", "validation_perplexity": "perplexity", "collect_records": "records",
    "read_records": "records", "select_checkpoint": "records", "evaluate_run": "run",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
