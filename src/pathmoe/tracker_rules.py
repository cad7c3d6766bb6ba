"""Which experiment trackers `train.trackers` may name and the package each needs, without importing any.

The experiment loader and the train spec share these rules, so a tracker whose package is missing
fails when the config is loaded (one line naming the pip extra), not after a job has queued.
"""

from __future__ import annotations

import importlib.util
from typing import Any

# tracker name -> the importable module it writes through (None: written by pathmoe itself)
TRACKERS: dict[str, str | None] = {"csv": None, "tensorboard": "tensorboard", "wandb": "wandb"}
EXTRA = "trackers"  # pyproject extra that installs every tracker package: pip install 'pathmoe[trackers]'
REPLACED_KEY = ("tensorboard", "train.tensorboard was replaced by train.trackers; write `trackers: [tensorboard]` "
                               "(allowed trackers: csv, tensorboard, wandb)")


def check_trackers(names: Any, key: str = "train.trackers") -> list[str]:
    """`names` as a list of known trackers whose packages are importable; ValueError (one line) otherwise."""
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{key}={names!r}: expected a list of tracker names; allowed: {', '.join(TRACKERS)}")
    for name in names:
        if name not in TRACKERS:
            raise ValueError(f"{key}: unknown tracker {name!r}; allowed: {', '.join(TRACKERS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{key}={list(names)!r}: a tracker is listed twice")
    for name in names:
        module = TRACKERS[name]
        if module is not None and importlib.util.find_spec(module) is None:
            raise ValueError(f"{key}: tracker {name!r} needs the {module!r} package, which is not installed; "
                             f"pip install 'pathmoe[{EXTRA}]'")
    return list(names)
