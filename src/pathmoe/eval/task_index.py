"""Which evaluation task names exist, answered fast enough to check a config at parse time.

lm-eval's own index (`TaskManager().all_tasks`) parses ~14k task YAMLs and takes several seconds,
too slow for every Snakemake start. A plain-text scan of the same YAML files for their `task:`,
`group:` and `tag:` keys takes a fraction of a second and finds every commonly used task; a name
the scan does not find is looked up in lm-eval's full index before it is called unknown, so the
slow path costs time only for configs that are about to be rejected (or for rare tasks whose YAML
spells its name in a way the scan does not read). Nothing here imports lm-eval for the fast path,
and no network is touched.
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


@functools.lru_cache(maxsize=1)
def _lm_eval_full_index() -> frozenset[str]:
    from pathmoe.eval.harness import task_manager

    return frozenset(task_manager(None).all_tasks)


def unknown_tasks(names: Iterable[str], include_dirs: Sequence[str | os.PathLike] = ()) -> list[str]:
    """The names in `names` that are neither offline tasks, nor declared in `include_dirs`, nor in
    the installed lm-eval's task index (order kept)."""
    wanted = [n for n in dict.fromkeys(names) if n not in OFFLINE_TASKS]
    if not wanted:
        return []
    known = set(_lm_eval_scan())
    for d in include_dirs:
        known |= scan_task_dir(d)
    missing = [n for n in wanted if n not in known]
    if missing:
        full = _lm_eval_full_index()
        missing = [n for n in missing if n not in full]
    return missing


__all__ = ["OFFLINE_TASKS", "scan_task_dir", "unknown_tasks"]
