"""Which number of each task the paper reports: the single place that maps task -> metric.

Model selection reads accuracy through `paper_metric`, and the report spec rejects a table column
whose metric differs from it (pathmoe.report.spec), so a task is never selected on one of lm-eval's
metrics and tabled on another (acc vs acc_norm).
"""

from __future__ import annotations

# The paper (Sec. 4.1): "All results report accuracy; OpenBookQA, PIQA, ARC-Easy, and HellaSwag use
# length-normalized accuracy". The 16B set (Sec. 4.2) adds MMLU, ARC-C, CommonsenseQA (accuracy) and
# TriviaQA (5-shot exact match). The offline tasks mirror HellaSwag (offline_mc, offline_next: acc_norm)
# and LAMBADA (offline_cloze: acc).
PAPER_METRICS: dict[str, str] = {
    "arc_easy": "acc_norm",
    "boolq": "acc",
    "hellaswag": "acc_norm",
    "lambada_openai": "acc",
    "openbookqa": "acc_norm",
    "piqa": "acc_norm",
    "social_iqa": "acc",
    "winogrande": "acc",
    "mmlu": "acc",
    "arc_challenge": "acc",
    "commonsense_qa": "acc",
    "triviaqa": "exact_match",
    "offline_mc": "acc_norm",
    "offline_next": "acc_norm",
    "offline_cloze": "acc",
}

ZERO_SHOT_TASKS: tuple[str, ...] = (
    "arc_easy", "boolq", "hellaswag", "lambada_openai", "openbookqa", "piqa", "social_iqa", "winogrande",
)
EXTRA_16B_TASKS: tuple[str, ...] = ("mmlu", "arc_challenge", "commonsense_qa", "triviaqa")
OFFLINE_TASKS: tuple[str, ...] = ("offline_mc", "offline_next", "offline_cloze")

# Rows that are not lm-eval tasks; they never enter the accuracy average.
VAL_PPL = "val_ppl"
THROUGHPUT = "throughput_ktok_s"
PEAK_MEM = "peak_mem_gib"
NON_TASK_ROWS: tuple[str, ...] = (VAL_PPL, THROUGHPUT, PEAK_MEM)

RECORD_COLUMNS: tuple[str, ...] = (
    "run", "variant", "scale", "dataset", "seed", "step", "task", "metric", "value", "stderr",
)


def paper_metric(task: str) -> str:
    """The metric the paper reports for `task`; plain accuracy for tasks the paper never used."""
    return PAPER_METRICS.get(task, "acc")
