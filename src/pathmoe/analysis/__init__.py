"""pathmoe.analysis: routing traces and the paper's path analyses (Tables 3-4, Figs 4, 5, 7, 8).

Everything except trace collection and robustness is pure numpy over a traces file, so the
analyses run on any checkpoint's traces, native or from a Hugging Face MoE model. Definitions and
choices: docs/analysis.md. Model-dependent names (collect_traces, PathRestrictionHook, ...) are
imported lazily so `import pathmoe.analysis` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .categories import CATEGORIES, CATEGORY_TABLE, classify
from .consistency import align_experts, consistency_metrics, path_consistency, run_lengths
from .paths import consecutive_layer_correlation, coverage_curve, entropy_bits, path_ids, path_metrics, top_paths
from .specialization import specialization, word_categories

_LAZY = {
    "collect_traces": ".traces", "save_traces": ".traces", "load_traces": ".traces",
    "mean_entropy_per_layer": ".traces", "collect_hf_traces": ".hf", "PathRestrictionHook": ".restriction",
    "PermutationHook": ".robustness", "permutation_robustness": ".robustness", "perplexity": ".robustness",
    "run_all": ".suite",
}

__all__ = [
    "CATEGORIES", "CATEGORY_TABLE", "align_experts", "classify", "consecutive_layer_correlation",
    "consistency_metrics", "coverage_curve", "entropy_bits", "path_consistency", "path_ids", "path_metrics",
    "run_lengths", "specialization", "top_paths", "word_categories", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
