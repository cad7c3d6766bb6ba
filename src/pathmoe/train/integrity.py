"""Hash records of what training writes, and the guard against resuming from a damaged run dir.

Every HF export (`hf/step_<N>/`) and DeepSpeed checkpoint (`ds_ckpt/step_<N>/`) gets a provenance
record beside it (`step_<N>.prov.json`, pathmoe.audit.provenance) the moment it is written: the
sha256 of every file in the directory, whatever files the writer produced (per-rank optimizer
shards, per-expert files). `pathmoe audit verify` checks them like any artifact, evaluation and the
analyses refuse an export that differs from its record (pathmoe.model.export), and resume refuses a
DeepSpeed tag that does. The files of a DeepSpeed tag are hashed in parallel, each rank a share.

`check_training_state` runs before training touches a run directory: checkpoints whose markers
(`ds_ckpt/complete.json`, `state_hash`, `data_hash`) are missing or disagree with what is on disk stop the run
with one line naming the directory and the way out, instead of a silent restart from step 0 that
would throw the checkpoints away.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from pathmoe.io import read_json, sha256_file
from pathmoe.model.export import RUN_MARKER
from pathmoe.train.trackers import TRACKER_FILES

MARKER = "complete.json"  # ds_ckpt/complete.json: the DeepSpeed tags whose save finished on every rank
SETTINGS_MARKER = RUN_MARKER  # state_hash: hash of the run spec the state was trained under
DATA_MARKER = "data_hash"  # pathmoe.data.dataset_identity of the data it was trained on
# Everything `--restart` discards: the training state, its markers and the finished-run summary.
RESTART_FILES = ("ds_ckpt", "hf", "metrics.jsonl", "restricted_paths.json", SETTINGS_MARKER, DATA_MARKER,
                 "train_summary.json", "train_summary.json.prov.json", *TRACKER_FILES)


def _record_path(path: Path) -> Path:
    from pathmoe.audit.provenance import record_path

    return record_path(path)


def _dist() -> tuple[int, int, Any]:
    import torch.distributed as dist

    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), dist
    return 0, 1, None


def shared_hashes(directory: Path) -> Any:
    """A HashCache holding the sha256 of every file under `directory`, each rank hashing every
    world-th file and all ranks receiving all hashes (one all_gather_object)."""
    from pathmoe.audit.hashing import HashCache

    rank, world, dist = _dist()
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    mine = {str(p): sha256_file(p) for i, p in enumerate(files) if i % world == rank}
    parts: list[Any] = [mine]
    if dist is not None and world > 1:
        parts = [None] * world
        dist.all_gather_object(parts, mine)
    cache = HashCache()
    for part in parts:
        for path, sha in part.items():
            cache.add(Path(path), sha)
    return cache


class CheckpointRecorder:
    """Writes the record of each export / DeepSpeed tag of one run (rank 0 writes, all ranks hash)."""

    def __init__(self, run_dir: Path, data_dir: Path, argv: Sequence[str]) -> None:
        self.run_dir, self.data_dir, self.argv = Path(run_dir), Path(data_dir), [str(a) for a in argv]

    def inputs(self) -> list[Path]:
        candidates = (self.run_dir / "train_config.json", self.data_dir / "shards" / "index.json",
                      self.data_dir / "tokenizer")
        return [p for p in candidates if p.exists()]

    def record(self, target: Path, started: datetime, cache: Any = None) -> None:
        """Write `<target>.prov.json` (call on rank 0 once `target` is complete)."""
        from pathmoe.audit.provenance import record_provenance

        config = self.run_dir / "train_config.json"
        record_provenance([target], self.inputs(), self.argv, started, datetime.now(timezone.utc),
                          config=config if config.is_file() else None, cwd=os.getcwd(), cache=cache)


def forget(target: Path) -> None:
    """Remove a checkpoint directory and its record (record first: a record never outlives nothing)."""
    _record_path(target).unlink(missing_ok=True)
    shutil.rmtree(target, ignore_errors=True)


def verify_tag(tag_dir: Path) -> None:
    """ValueError (one line) unless a DeepSpeed tag hashes to the record written when it was saved
    (every rank calls this; the files are hashed in parallel)."""
    from pathmoe.audit.provenance import record_mismatch

    problem = record_mismatch(tag_dir, shared_hashes(tag_dir) if tag_dir.is_dir() else None)
    if problem:
        run_dir = tag_dir.parent.parent
        raise ValueError(f"{run_dir}: DeepSpeed checkpoint {tag_dir.name} does not match its record: {problem}; "
                         f"{way_out(run_dir)}")


def way_out(run_dir: Path) -> str:
    return (f"rerun with `pathmoe train --run-config {run_dir / 'train_config.json'} --restart` to discard "
            f"the run's training state and start over, or repair {run_dir / 'ds_ckpt' / MARKER} (docs/training.md)")


def _step(tag: str) -> int:
    return int(tag[5:]) if tag.startswith("step_") and tag[5:].isdigit() else -1


def check_training_state(run_dir: str | os.PathLike) -> None:
    """Raise ValueError (one line naming `run_dir` and the way out) when the run directory holds
    checkpoints whose markers are missing or inconsistent; return quietly otherwise.

    A DeepSpeed tag directory counts as a finished checkpoint when it has a record (written after
    every rank saved); one without is a torn save, which the next save of that step replaces.
    """
    run_dir = Path(run_dir)
    ds = run_dir / "ds_ckpt"
    saved = sorted((p.name for p in ds.glob("step_*") if p.is_dir() and _record_path(p).is_file()),
                   key=_step) if ds.is_dir() else []
    marker = ds / MARKER
    if saved and not marker.exists():
        raise ValueError(f"{run_dir}: DeepSpeed checkpoints {saved} exist but {marker} is missing; "
                         f"{way_out(run_dir)}")
    if marker.exists():
        try:
            tags = read_json(marker)["tags"]
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise TypeError
        except (OSError, ValueError, KeyError, TypeError):
            raise ValueError(f"{run_dir}: {marker} is unreadable (expected {{\"tags\": [\"step_<N>\", ...]}}); "
                             f"{way_out(run_dir)}") from None
        absent = [t for t in tags if not (ds / t).is_dir()]
        if absent:
            raise ValueError(f"{run_dir}: {marker} lists {absent}, which do not exist; {way_out(run_dir)}")
        newest = max((_step(t) for t in tags), default=-1)
        unlisted = [t for t in saved if t not in tags and _step(t) > newest]
        if unlisted:
            raise ValueError(f"{run_dir}: finished DeepSpeed checkpoints {unlisted} are newer than every tag "
                             f"{marker} lists ({tags}); {way_out(run_dir)}")
    exports = sorted(p.name for p in (run_dir / "hf").glob("step_*") if p.is_dir()) if (run_dir / "hf").is_dir() else []
    if saved or exports or marker.exists():
        for name, what in ((SETTINGS_MARKER, "the run spec"), (DATA_MARKER, "the identity of the data")):
            if not (run_dir / name).is_file():
                raise ValueError(f"{run_dir}: checkpoints {saved + exports} exist but {run_dir / name} ({what} "
                                 f"they were trained with) is missing; {way_out(run_dir)}")


def discard_training_state(run_dir: str | os.PathLike) -> list[str]:
    """`--restart`: delete every file of RESTART_FILES in `run_dir`; return what was deleted."""
    run_dir = Path(run_dir)
    gone = []
    for name in RESTART_FILES:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        gone.append(name)
    return gone


__all__ = ["CheckpointRecorder", "check_training_state", "discard_training_state", "forget", "shared_hashes",
           "verify_tag", "way_out"]
