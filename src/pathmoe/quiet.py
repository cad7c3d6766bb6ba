"""Quiet job logs: third-party progress bars off when output goes to a file.

A Snakemake job writes its stderr to `<run>/<stage>.log`; there every progress-bar refresh of
transformers ("Loading weights", "Writing model shards"), datasets ("Generating test split") and
lm-eval ("Running loglikelihood requests") becomes a line, and a log of a few useful lines grows
into hundreds. `pathmoe` calls `quiet_progress_bars()` when stderr is not a terminal; each library
reads its own switch, so an explicit setting in the environment (e.g. `TQDM_DISABLE=0`) still wins.
"""

from __future__ import annotations

import os
import sys

# The switches the libraries read: tqdm's default for `disable` (bars created without one), the
# Hugging Face hub's (transformers' weight loading and saving use it) and datasets'.
PROGRESS_BAR_SWITCHES = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                         "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}


def to_terminal() -> bool:
    """Whether stderr is an interactive terminal (False inside a job whose output is a log file)."""
    return sys.stderr is not None and sys.stderr.isatty()


def quiet_progress_bars() -> None:
    """Turn third-party progress bars off for this process and its children, unless set already."""
    for key, value in PROGRESS_BAR_SWITCHES.items():
        os.environ.setdefault(key, value)
