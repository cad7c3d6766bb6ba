"""Path-restricted continuation (paper Table 3).

The run starts from an early checkpoint of another run (`init_from.checkpoint`, an HF export),
finds that checkpoint's `restrict_top_paths` most frequent top-1 paths on `path_tokens` held-out
tokens, and trains on with every forward routed through `PathRestrictionHook(paths)` (fresh
optimizer, the run's own schedule). Rank 0 finds the paths and broadcasts them, so every rank restricts
to the same set; they are written to run_dir/restricted_paths.json once and re-read on resume, so a
resumed run restricts to exactly the same set.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pathmoe.io import atomic_write_json, read_json


def init_identity(data_identity: str, init: dict[str, Any] | None) -> str:
    """What a run trains from: its data's identity, and for a run with init_from also the bytes of the
    checkpoint it starts from (config.json + model.safetensors), so a replaced checkpoint, like
    changed data, restarts the run (or refuses, train.on_data_change) instead of resuming it."""
    if not init:
        return data_identity
    digest = hashlib.sha256(data_identity.encode())
    ckpt = Path(init["checkpoint"])
    for name in ("config.json", "model.safetensors"):
        if not (ckpt / name).is_file():
            raise FileNotFoundError(f"init_from.checkpoint={str(ckpt)!r} has no {name}: not an HF export "
                                    "(config.json + model.safetensors)")
        with open(ckpt / name, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 24), b""):
                digest.update(chunk)
    return digest.hexdigest()


def load_init_weights(model: torch.nn.Module, checkpoint: str | Path) -> None:
    """Copy every weight of the HF export `checkpoint` into `model` (shapes must match exactly; an
    expert-parallel rank of the deepspeed dispatch takes its slice of each layer's experts)."""
    from pathmoe.model.export import load_export

    ckpt = Path(checkpoint)
    if not (ckpt / "config.json").is_file():
        raise FileNotFoundError(f"init_from.checkpoint={str(ckpt)!r} is not an HF export (no config.json)")
    source = load_export(ckpt)
    state = source.state_dict()
    for name, module in model.named_modules():  # an expert-parallel rank takes its slice of every layer's experts
        experts = getattr(module, "experts", None)
        if getattr(experts, "total", 0) > getattr(experts, "n_experts", 0):
            lo, hi = experts.first, experts.first + experts.n_experts
            for pname in ("w_up", "w_down"):
                key = f"{name}.experts.{pname}"
                if key in state and state[key].shape[0] == experts.total:
                    state[key] = state[key][lo:hi]
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise ValueError(f"init_from.checkpoint={str(ckpt)!r} does not match the run's model config: "
                         f"{first}") from None


def init_restricted(model: torch.nn.Module, rc: dict[str, Any], device: torch.device, rank: int) -> Any:
    """Load init_from weights into `model`; return the PathRestrictionHook for every training forward.

    `restrict_top_paths: null` is the unrestricted control ("all paths" in Table 3): the same
    continuation from the same checkpoint, with no hook (returns None).
    """
    from pathmoe.analysis.restriction import PathRestrictionHook

    init = rc["init_from"]
    load_init_weights(model, init["checkpoint"])
    if init.get("restrict_top_paths") is None:
        return None
    n, budget = init["restrict_top_paths"], init["path_tokens"]
    for key, value in (("restrict_top_paths", n), ("path_tokens", budget)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"init_from.{key}={value!r}: expected an integer >= 1")
    out = Path(rc["run_dir"]) / "restricted_paths.json"
    paths = None
    if rank == 0:
        paths = _rank0_paths(model, rc, device, out)
    return PathRestrictionHook(broadcast_from_rank0(paths))


def _rank0_paths(model: torch.nn.Module, rc: dict[str, Any], device: torch.device, out: Path) -> np.ndarray:
    """The path set: re-read on resume, else found on the checkpoint's traces and saved."""
    from pathmoe.analysis.suite import analyze_traces, val_tokens
    from pathmoe.analysis.traces import collect_traces

    init = rc["init_from"]
    if out.exists():  # a resumed run: the set was fixed when the run started
        return np.asarray(read_json(out)["paths"], dtype=np.int64)
    tokens = val_tokens(Path(rc["data_dir"]) / "shards", init["path_tokens"])
    seq_len = min(int(rc["train"].get("seq_len", 128)), len(tokens))
    model.to(device)
    traces = collect_traces(model, tokens, seq_len, int(rc["train"].get("micro_batch_size", 8)), device)
    found = analyze_traces("top-paths", traces, top_n=init["restrict_top_paths"])  # {"paths", "counts", "num_tokens"}
    atomic_write_json(out, {"checkpoint": str(init["checkpoint"]), "restrict_top_paths": init["restrict_top_paths"],
                            **found})
    return np.asarray(found["paths"], dtype=np.int64)


def broadcast_from_rank0(paths: np.ndarray | None) -> np.ndarray:
    """Rank 0's path set [P, L] on every rank (the array itself without a process group)."""
    import torch.distributed as dist

    if dist.is_initialized() and dist.get_world_size() > 1:
        box = [paths]
        dist.broadcast_object_list(box, src=0)
        paths = box[0]
    if paths is None:
        raise RuntimeError("restricted paths: rank 0 sent none (is this process rank 0 without a process group?)")
    return np.asarray(paths, dtype=np.int64)
