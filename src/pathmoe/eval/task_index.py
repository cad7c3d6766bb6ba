"""Which evaluation task names exist, answered fast enough to check a config at parse time.

lm-eval's own index (`TaskManager().all_tasks`, behind `pathmoe.eval.harness.unknown_tasks`, the
authority on task names) parses ~14k task YAMLs and takes several seconds: too slow for every
Snakemake start. A plain-text scan of the same YAML files (and of `eval.task_dirs`) for their
`task:`, `group:` and `tag:` keys takes a fraction of a second and finds every commonly used task.
A name the scan does not find is handed to the authority before it is called unknown, so the slow
path costs time only for configs that are about to be rejected (or for rare tasks whose YAML spells
its name in a way the scan does not read). The fast path imports neither lm-eval nor torch, and no
network is touched.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

from pathmoe.eval.metrics import OFFLINE_TASKS

_KEY = re.compile(r"^[\"']?(?:task|group|tag)[\"']?:[ \t]*([^\n#]*)", re.M)  # `task: x`, `"task": "x"`
_TAG_LIST = re.compile(r"^[\"']?tag[\"']?:[ \t]*\n((?:[ \t]*-[^\n]*\n?)+)", re.M)


def _names_in(text: str) -> set[str]:
    names: set[str] = set()
    for value in _KEY.findall(text):
        value = value.strip()
        if value.startswith("["):
            names.update(v.strip().strip("'\"") for v in value.strip("[]").split(","))
        else:
            names.add(value.strip("'\""))
    for block in _TAG_LIST.findall(text):
        names.update(line.strip()[1:].strip().strip("'\"") for line in block.splitlines() if line.strip())
    names.discard("")
    return names


def scan_task_dir(root: str | os.PathLike) -> frozenset[str]:
    """Task, group and tag names declared by the YAML files under `root` (a plain-text scan)."""
    names: set[str] = set()
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name.endswith((".yaml", ".yml")):
                with open(os.path.join(dirpath, name), encoding="utf-8", errors="replace") as f:
                    names |= _names_in(f.read())
    return frozenset(names)


@functools.lru_cache(maxsize=1)
def _lm_eval_scan() -> frozenset[str]:
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or spec.origin is None:
        return frozenset()
    return scan_task_dir(Path(spec.origin).parent / "tasks")


def unknown_tasks(names: Iterable[str], task_dirs: Sequence[str | os.PathLike] = ()) -> list[str]:
    """The names in `names` that are neither offline tasks, nor tasks of `task_dirs` (eval.task_dirs),
    nor in the installed lm-eval's task index (order kept, duplicates dropped)."""
    wanted = [n for n in dict.fromkeys(names) if n not in OFFLINE_TASKS]
    if not wanted:
        return []
    known = set(_lm_eval_scan())
    for d in task_dirs:
        known |= scan_task_dir(d)
    missing = [n for n in wanted if n not in known]
    if not missing:
        return []
    from pathmoe.eval.harness import unknown_tasks as indexed_unknown  # lm-eval's own index: seconds

    return indexed_unknown(missing, [str(d) for d in task_dirs])


__all__ = ["OFFLINE_TASKS", "scan_task_dir", "unknown_tasks"]
