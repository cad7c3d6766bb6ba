"""Resume checkpoints (DeepSpeed) and Hugging Face exports, both crash-safe.

DeepSpeed writes a checkpoint as many files under a tag directory; a kill during that write
leaves a directory that looks like a checkpoint. So we never trust a tag directory by itself:
after every rank has saved, rank 0 atomically rewrites `ds_ckpt/complete.json`, the list of
finished tags, and resume only ever loads a tag from that list. Exports go to a temporary
directory that is renamed into place, so `hf/step_<N>/` exists only when complete. Both get a
hash record beside them when written, and resume checks a tag against its record before loading
it (pathmoe.train.integrity).
"""

from __future__ import annotations

import random
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from pathmoe.io import atomic_path, atomic_write_json, atomic_write_text, read_json
from pathmoe.train.integrity import (DATA_MARKER, MARKER, SETTINGS_MARKER, CheckpointRecorder, forget,
                                     shared_hashes, verify_tag)
from pathmoe.train.spec import ON_DATA_CHANGE
from pathmoe.train.trackers import TRACKER_FILES

KEEP_DS = 2


def rng_state() -> dict[str, Any]:
    """Every RNG a training step may draw from (python, numpy, torch CPU and CUDA)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class ResumeCheckpoints:
    """DeepSpeed checkpoints under `ds_ckpt/` with a completion marker; keeps the last two. With a
    `recorder`, each finished tag gets its hash record before the marker lists it."""

    def __init__(self, ckpt_dir: str | Path, rank: int, recorder: CheckpointRecorder | None = None) -> None:
        self.dir = Path(ckpt_dir)
        self.rank = rank
        self.recorder = recorder

    def complete_tags(self) -> list[str]:
        marker = self.dir / MARKER
        return list(read_json(marker)["tags"]) if marker.exists() else []

    def world_sizes(self) -> dict[str, int]:
        """{tag: number of ranks that saved it} (tags saved before this was recorded are absent)."""
        marker = self.dir / MARKER
        return dict(read_json(marker).get("world_sizes", {})) if marker.exists() else {}

    def latest(self) -> str | None:
        """The newest complete tag, or None for a fresh run."""
        tags = self.complete_tags()
        return tags[-1] if tags else None

    def save(self, engine: Any, step: int, client_state: dict[str, Any]) -> str:
        """Save on every rank, then (rank 0) mark the tag complete and prune old tags."""
        import torch.distributed as dist

        tag = f"step_{step}"
        started = datetime.now(timezone.utc)
        if self.rank == 0 and (self.dir / tag).exists() and tag not in self.complete_tags():
            forget(self.dir / tag)  # a torn save from a killed run: start it clean
        if dist.is_initialized():
            dist.barrier()
        from pathmoe.train.elastic import universal_info

        # what `pathmoe convert-checkpoint` needs; DeepSpeed's MoE save reserves the key (and its
        # universal conversion does not cover MoE experts)
        extra = {} if getattr(engine, "has_moe_layers", False) else universal_info()
        engine.save_checkpoint(str(self.dir), tag=tag, client_state={**client_state, **extra}, save_latest=False)
        if dist.is_initialized():
            dist.barrier()
        cache = shared_hashes(self.dir / tag) if self.recorder is not None else None  # every rank hashes a share
        if self.rank == 0:
            if self.recorder is not None:
                self.recorder.record(self.dir / tag, started, cache)  # before the marker lists the tag
            tags = [t for t in self.complete_tags() if t != tag] + [tag]
            sizes = {**self.world_sizes(), tag: dist.get_world_size() if dist.is_initialized() else 1}
            atomic_write_json(self.dir / MARKER, {"tags": tags[-KEEP_DS:],
                                                  "world_sizes": {t: sizes[t] for t in tags[-KEEP_DS:] if t in sizes}})
            for old in self.dir.glob("step_*"):  # pruned tags, and leftovers of a crash while pruning
                if old.is_dir() and old.name not in tags[-KEEP_DS:]:
                    forget(old)
        if dist.is_initialized():
            dist.barrier()
        return tag

    def load(self, engine: Any, tag: str) -> dict[str, Any]:
        """Load `tag` (model, optimizer, scheduler) and return our client_state; with a recorder,
        only after the tag's files match the record written when it was saved."""
        if self.recorder is not None:
            verify_tag(self.dir / tag)
        path, client = engine.load_checkpoint(str(self.dir), tag=tag, load_optimizer_states=True,
                                              load_lr_scheduler_states=True)
        if path is None:
            raise FileNotFoundError(f"DeepSpeed checkpoint {self.dir / tag} could not be loaded")
        return client


def export_steps_to_keep(steps: Iterable[int], keep: int, pinned: Iterable[int]) -> list[int]:
    """The exports that survive: the final `keep` by step (model selection, paper 4.2) + pinned."""
    steps = sorted(set(steps))
    pinned = set(pinned)
    return sorted(set(steps[-keep:]) | (pinned & set(steps)))


def existing_exports(hf_dir: Path) -> list[int]:
    if not hf_dir.exists():
        return []
    return sorted(int(p.name[5:]) for p in hf_dir.iterdir()
                  if p.is_dir() and p.name.startswith("step_") and p.name[5:].isdigit())


def export_hf(model: Any, hf_dir: Path, step: int, tokenizer_dir: Path | None,
              state_dict: dict[str, torch.Tensor] | None = None,
              recorder: CheckpointRecorder | None = None) -> Path:
    """Write `hf/step_<step>/` atomically: save_pretrained + the tokenizer files copied in; with a
    `recorder`, then its hash record (the old record goes first, so none describes other bytes).

    Exports are always in the dropless layout (all experts of a layer in one [E, ...] tensor, config
    `dispatch: dropless`; `PathMoEForCausalLM.save_pretrained`): training passes a deepspeed-dispatch
    model's `state_dict` from `pathmoe.model.deepspeed_moe.dropless_state_dict`, gathered on every
    rank of its expert-parallel group before rank 0 writes."""
    target = hf_dir / f"step_{step}"
    started = datetime.now(timezone.utc)
    if recorder is not None:
        from pathmoe.audit.provenance import record_path

        record_path(target).unlink(missing_ok=True)
    with atomic_path(target) as tmp:
        model.save_pretrained(str(tmp), state_dict=state_dict, safe_serialization=True)  # dropless layout
        if tokenizer_dir is not None and tokenizer_dir.is_dir():
            for f in tokenizer_dir.iterdir():
                if f.is_file():
                    shutil.copy2(f, tmp / f.name)
    if recorder is not None:
        recorder.record(target, started)
    return target


def prune_exports(hf_dir: Path, keep: int, pinned: Iterable[int]) -> list[int]:
    """Delete exports outside `export_steps_to_keep`; return the kept steps."""
    steps = existing_exports(hf_dir)
    kept = export_steps_to_keep(steps, keep, pinned)
    for s in set(steps) - set(kept):
        forget(hf_dir / f"step_{s}")
    return kept


STATE_FILES = ("ds_ckpt", "hf", "metrics.jsonl", "restricted_paths.json", "train_summary.json", *TRACKER_FILES)


class DataChangedError(ValueError):
    """A run's checkpoints were trained on other data and `train.on_data_change` is `refuse`."""


def settings_hash(run_config: dict[str, Any]) -> str:
    """Hash of what training depends on in the run spec: not eval/analysis, not on_data_change, not
    the trackers it is mirrored to (adding one to a finished or running run never retrains it)."""
    from pathmoe.audit.hashing import config_hash
    from pathmoe.config import POST_TRAINING_KEYS

    spec = {k: v for k, v in run_config.items() if k not in POST_TRAINING_KEYS}
    spec["train"] = {k: v for k, v in (spec.get("train") or {}).items() if k not in ("on_data_change", "trackers")}
    return config_hash(spec)


def _read(path: Path) -> str | None:
    return path.read_text().strip() if path.is_file() else None


def _has_trained_state(run_dir: Path) -> bool:
    return any((run_dir / name).exists() for name in ("ds_ckpt", "hf", "train_summary.json"))


def state_change(run_dir: Path, run_config: dict[str, Any], data_identity: str) -> str | None:
    """Why the run directory's training state cannot be resumed, or None when it can (or is empty).

    Read-only, so every rank can call it before any process group exists: with
    `train.on_data_change: refuse`, state trained on other data raises DataChangedError on all
    ranks alike (a one-line message saying how to choose), instead of being deleted.
    """
    on_data_change = (run_config.get("train") or {}).get("on_data_change", "restart")
    if on_data_change not in ON_DATA_CHANGE:
        raise ValueError(f"train.on_data_change={on_data_change!r}: allowed {', '.join(ON_DATA_CHANGE)}")
    run_dir = Path(run_dir)
    if not any((run_dir / name).exists() for name in STATE_FILES):
        return None
    reasons = []
    old_settings = _read(run_dir / SETTINGS_MARKER)
    if old_settings != settings_hash(run_config):
        reasons.append("run spec changed" if old_settings else "no run spec hash recorded")
    old_data = _read(run_dir / DATA_MARKER)
    data_changed = old_data != data_identity
    if data_changed:
        was = old_data[:12] if old_data else "unrecorded"
        reasons.append(f"data changed (dataset identity {was} -> {data_identity[:12]})")
        if on_data_change == "refuse" and _has_trained_state(run_dir):
            raise DataChangedError(
                f"run {run_config.get('run', run_dir.name)}: its checkpoints were trained on other data than "
                f"{run_config.get('data_dir')} now holds (dataset identity {was} -> {data_identity[:12]}); set "
                "train.on_data_change: restart to retrain it from scratch, or restore the old data")
    return "; ".join(reasons) or None


def reset_if_state_changed(run_dir: Path, run_config: dict[str, Any], data_identity: str) -> bool:
    """Drop a run directory's training state when it was made under another run spec or other data.

    Resuming is only sound for the spec and the data the checkpoints were written with: after a
    config edit or a data change, the job must start from scratch, never continue a different
    model or another corpus's checkpoint. The spec's hash is kept in `<run_dir>/state_hash`, the
    data's identity (`pathmoe.data.dataset_identity`) in `<run_dir>/data_hash`. Prints a one-line
    notice and returns True when old state was removed; raises DataChangedError instead when the
    data changed and the run spec's `train.on_data_change` is "refuse".
    """
    run_dir = Path(run_dir)
    reason = state_change(run_dir, run_config, data_identity)
    if reason is not None:
        for name in STATE_FILES:
            path = run_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        print(f"{run_dir}: {reason} since its checkpoints were written; starting from scratch", flush=True)
    for marker, value in ((SETTINGS_MARKER, settings_hash(run_config)), (DATA_MARKER, data_identity)):
        if _read(run_dir / marker) != value:
            atomic_write_text(run_dir / marker, value + "\n")
    return reason is not None
