"""Resuming on another number of ranks (an elastic restart after losing a node).

A DeepSpeed checkpoint without ZeRO (`zero_stage: 0`) holds the whole optimizer state in every
file it reads back, so it resumes on any number of ranks (the expert-parallel size is part of the
run spec, so it never changes under a resume). With ZeRO 1-2 the optimizer state is partitioned
over the ranks that saved it and DeepSpeed refuses another count; its universal checkpoint
(`deepspeed.checkpoint.ds_to_universal`) re-partitions it. `pathmoe convert-checkpoint --run-dir D`
converts the newest complete tag `step_<N>` into `step_<N>_universal` (with its hash record), and
the next start on a different number of ranks loads that with `checkpoint: {load_universal: true}`.
Without the conversion the start stops with one line naming the command. DeepSpeed's conversion
does not cover the per-expert files of its native MoE layers, so an expert-parallel (deepspeed
dispatch) run under ZeRO 1-2 must resume on the number of ranks that saved it.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pathmoe.io import atomic_path, read_json
from pathmoe.train.integrity import MARKER, CheckpointRecorder

UNIVERSAL_SUFFIX = "_universal"


def universal_info() -> dict[str, Any]:
    """The client state `ds_to_universal` requires in a checkpoint (no tensor/pipeline parallelism:
    no parameter patterns to merge)."""
    from deepspeed.checkpoint.constants import (UNIVERSAL_CHECKPOINT_INFO, UNIVERSAL_CHECKPOINT_VERSION_KEY,
                                                UNIVERSAL_CHECKPOINT_VERSION_VALUE)

    return {UNIVERSAL_CHECKPOINT_INFO: {UNIVERSAL_CHECKPOINT_VERSION_KEY: UNIVERSAL_CHECKPOINT_VERSION_VALUE}}


def resume_plan(run_dir: Path, tag: str, saved_ranks: int | None, ranks: int, zero_stage: int,
                dispatch: str) -> tuple[str, bool]:
    """(tag to load, whether it is a universal checkpoint) for resuming `tag` on `ranks` ranks;
    ValueError (one line) when it cannot be resumed on them as it is."""
    if saved_ranks is None or saved_ranks == ranks or zero_stage == 0:
        return tag, False
    where = f"{run_dir / 'ds_ckpt' / tag} was saved by {saved_ranks} ranks and this job has {ranks}"
    if dispatch == "deepspeed":
        raise ValueError(f"{where}: ZeRO-{zero_stage} partitions its optimizer state per rank and DeepSpeed's "
                         f"universal conversion does not cover expert-parallel (deepspeed dispatch) experts; "
                         f"resume it on {saved_ranks} ranks (docs/training.md, 'Resuming on another number of ranks')")
    universal = tag + UNIVERSAL_SUFFIX
    if (run_dir / "ds_ckpt" / universal).is_dir():
        return universal, True
    raise ValueError(f"{where}: ZeRO-{zero_stage} partitions its optimizer state per rank; convert it once with "
                     f"`pathmoe convert-checkpoint --run-dir {run_dir}` and start again, or resume on "
                     f"{saved_ranks} ranks")


def convert_checkpoint(run_dir: str | os.PathLike, workers: int = 1) -> Path:
    """Write `ds_ckpt/step_<N>_universal` (DeepSpeed's universal layout) from the newest complete tag,
    with its hash record; return its path."""
    from deepspeed.checkpoint.ds_to_universal import main as ds_to_universal

    from pathmoe.train.integrity import verify_tag

    run_dir = Path(run_dir)
    ckpt = run_dir / "ds_ckpt"
    tags = read_json(ckpt / MARKER)["tags"] if (ckpt / MARKER).is_file() else []
    if not tags:
        raise ValueError(f"{run_dir}: no complete DeepSpeed checkpoint to convert ({ckpt / MARKER} lists none)")
    tag = tags[-1]
    spec = read_json(run_dir / "train_config.json") if (run_dir / "train_config.json").is_file() else {}
    if (spec.get("model") or {}).get("dispatch") == "deepspeed":
        raise ValueError(f"{run_dir}: DeepSpeed's universal conversion does not cover expert-parallel "
                         "(deepspeed dispatch) checkpoints; resume on the number of ranks that saved it")
    verify_tag(ckpt / tag)  # convert only the bytes training wrote
    started = datetime.now(timezone.utc)
    target = ckpt / (tag + UNIVERSAL_SUFFIX)
    args = argparse.Namespace(input_folder=str(ckpt / tag), output_folder="", num_extract_workers=workers,
                 num_merge_workers=workers, keep_temp_folder=False, strict=True, inject_missing_state=False)
    with atomic_path(target) as tmp:
        args.output_folder = str(tmp)
        ds_to_universal(args)
    (ckpt / "latest_universal").unlink(missing_ok=True)  # names the temporary folder; tags are ours to name
    data_dir = Path(spec.get("data_dir", run_dir))
    CheckpointRecorder(run_dir, data_dir, ["pathmoe", *sys.argv[1:]] or ["pathmoe", "convert-checkpoint"]).record(
        target, started)
    return target
