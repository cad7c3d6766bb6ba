"""Reading the run spec (run_config.json) that `pathmoe.config` resolves for each run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pathmoe.io import read_json

REQUIRED = ("run_dir", "data_dir", "model", "train")


def load_run_config(run_config: dict[str, Any] | str | os.PathLike) -> dict[str, Any]:
    """Return the run spec as a dict (from a dict or a JSON file), checking the keys train needs."""
    if isinstance(run_config, (str, os.PathLike)):
        path = Path(run_config)
        if not path.is_file():
            raise FileNotFoundError(f"run config {path} does not exist")
        run_config = read_json(path)
    if not isinstance(run_config, dict):
        raise ValueError(f"run config: expected a mapping, got {type(run_config).__name__}")
    for key in REQUIRED:
        if key not in run_config:
            raise ValueError(f"run config: missing key {key!r}; required: {', '.join(REQUIRED)}")
    if not isinstance(run_config["model"], dict):
        raise ValueError("run config: model must be a mapping of PathMoEConfig kwargs")
    init = run_config.get("init_from")
    if init is not None:
        if not isinstance(init, dict) or "checkpoint" not in init:
            raise ValueError("run config: init_from.checkpoint is missing; init_from needs checkpoint "
                             "(an HF export dir), restrict_top_paths (int or null) and path_tokens")
        if init.get("restrict_top_paths") is not None and "path_tokens" not in init:
            raise ValueError("run config: init_from.path_tokens is missing; it is required when "
                             "init_from.restrict_top_paths is set")
    return run_config
