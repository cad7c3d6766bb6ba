"""`eval.task_dirs`: folders of lm-eval task YAMLs a lab adds to the task index (its own benchmarks).

Each folder is passed to lm-eval's TaskManager beside the built-in tasks, so its tasks and groups
can be named in `eval.tasks` / `eval.curve_tasks` like any other. Checked when the config is
loaded (the folders exist and hold task YAMLs); every file in them is an input of the eval rule
and part of the eval cache key, so editing a task or its data re-evaluates. No torch or lm-eval
import here: the Snakefile calls it while it parses.
"""

from __future__ import annotations

import os
from pathlib import Path

YAML_SUFFIXES = (".yaml", ".yml")


def _files(folder: Path) -> list[Path]:
    """Every regular file under `folder` (hidden files and __pycache__ left out), sorted."""
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        found += [Path(root) / n for n in names if not n.startswith(".") and (Path(root) / n).is_file()]
    return sorted(found)


def _checked(folder: str) -> tuple[str, ...]:
    path = Path(folder)
    if not path.exists():
        raise FileNotFoundError(f"eval.task_dirs: {folder!r} does not exist")
    if not path.is_dir():
        raise ValueError(f"eval.task_dirs: {folder!r} is not a folder (give folders of lm-eval task YAMLs)")
    files = _files(path)
    if not any(f.suffix in YAML_SUFFIXES for f in files):
        raise ValueError(f"eval.task_dirs: {folder!r} holds no task YAML (*.yaml)")
    return tuple(str(f) for f in files)


def check_task_dirs(task_dirs: list[str]) -> None:
    """Raise a one-line error naming the first entry of `task_dirs` that is no folder of task YAMLs."""
    if not isinstance(task_dirs, list) or not all(isinstance(d, str) and d for d in task_dirs):
        raise ValueError(f"eval.task_dirs={task_dirs!r}: must be a list of folders of lm-eval task YAMLs")
    for folder in task_dirs:
        _checked(folder)


def task_dir_files(task_dirs: list[str]) -> list[str]:
    """Every file of the task folders (YAMLs and the data beside them): the eval rule's inputs."""
    return [f for folder in task_dirs for f in _checked(folder)]
