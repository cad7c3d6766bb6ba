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
        if "step" in init and (isinstance(init["step"], bool) or not isinstance(init["step"], int) or init["step"] < 0):
            raise ValueError(f"run config: init_from.step={init['step']!r}: expected the source run's step (an integer >= 0)")
        if "step" not in init and source_step(init) is None:
            raise ValueError(f"run config: init_from.step is missing and init_from.checkpoint={init['checkpoint']!r} "
                             "is not named step_<N>; give the source run's step")
        if init.get("restrict_top_paths") is not None and "path_tokens" not in init:
            raise ValueError("run config: init_from.path_tokens is missing; it is required when "
                             "init_from.restrict_top_paths is set")
    return run_config


def source_step(init: dict[str, Any]) -> int | None:
    """The optimizer step of the source run that a continuation starts from (`init_from.step`, else
    the `step_<N>` name of the export). A continuation draws its training windows from this step on,
    so it sees the batches the source would have seen next, not the ones the source trained on."""
    if "step" in init:
        return int(init["step"])
    name = Path(str(init.get("checkpoint", ""))).name
    return int(name[5:]) if name.startswith("step_") and name[5:].isdigit() else None
