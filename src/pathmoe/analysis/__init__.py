"""pathmoe.analysis: routing traces and the paper's path analyses (Tables 3-4, Figs 4, 5, 7, 8).

Everything except trace collection and robustness is pure numpy over a traces file, so the
analyses run on any checkpoint's traces, native or from a Hugging Face MoE model. Definitions and
choices: docs/analysis.md. Every name resolves lazily: a job that needs the path metrics does not
pay for torch (traces, robustness) or scipy (consistency), and the Snakefile can read
`suite.TRACE_ANALYSES` while parsing the DAG.

The Fig 5 record function is `pathmoe.analysis.specialization.specialization`; it is not exported
here because `pathmoe.analysis.specialization` names its submodule once that is imported.
"""

from pathmoe.lazy import lazy_exports

_EXPORTS = {
    "CATEGORIES": "categories", "CATEGORY_TABLE": "categories", "classify": "categories",
    "align_experts": "consistency", "consistency_metrics": "consistency", "path_consistency": "consistency",
    "run_lengths": "consistency",
    "collect_hf_traces": "hf",
    "consecutive_layer_correlation": "paths", "coverage_curve": "paths", "entropy_bits": "paths",
    "path_ids": "paths", "path_metrics": "paths", "top_paths": "paths",
    "PathRestrictionHook": "restriction",
    "PermutationHook": "robustness", "permutation_robustness": "robustness", "perplexity": "robustness",
    "word_categories": "specialization",
    "run_all": "suite",
    "collect_traces": "traces", "load_traces": "traces", "mean_entropy_per_layer": "traces", "save_traces": "traces",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
