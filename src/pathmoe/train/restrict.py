"""Path-restricted continuation (paper Table 3).

The run starts from an early checkpoint of another run (`init_from.checkpoint`, an HF export),
finds that checkpoint's `restrict_top_paths` most frequent top-1 paths on `path_tokens` held-out
tokens, and trains on with every forward routed through `PathRestrictionHook(paths)` (fresh
optimizer, the run's own schedule). The paths are written to run_dir/restricted_paths.json once and
re-read on resume, so a resumed run restricts to exactly the same set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from pathmoe.io import atomic_write_json, read_json


def load_init_weights(model: torch.nn.Module, checkpoint: str | Path) -> None:
    """Copy every weight of the HF export `checkpoint` into `model` (shapes must match exactly)."""
    from pathmoe.model import PathMoEForCausalLM

    ckpt = Path(checkpoint)
    if not (ckpt / "config.json").is_file():
        raise FileNotFoundError(f"init_from.checkpoint={str(ckpt)!r} is not an HF export (no config.json)")
    source = PathMoEForCausalLM.from_pretrained(str(ckpt))
    try:
        model.load_state_dict(source.state_dict(), strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise ValueError(f"init_from.checkpoint={str(ckpt)!r} does not match the run's model config: "
                         f"{first}") from None


def find_top_paths(model: torch.nn.Module, val_tokens: np.ndarray, n: int, seq_len: int, batch_size: int,
                   device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """The model's `n` most frequent top-1 paths [n', L] on `val_tokens`, with their counts."""
    from pathmoe.analysis.paths import top_paths
    from pathmoe.analysis.traces import collect_traces

    traces = collect_traces(model, val_tokens, seq_len, batch_size, device)
    return top_paths(traces["experts"][:, :, 0], n)


def init_restricted(model: torch.nn.Module, rc: dict[str, Any], device: torch.device, rank: int) -> Any:
    """Load init_from weights into `model`; return the PathRestrictionHook for every training forward.

    `restrict_top_paths: null` is the unrestricted control ("all paths" in Table 3): the same
    continuation from the same checkpoint, with no hook (returns None).
    """
    from pathmoe.analysis.restriction import PathRestrictionHook
    from pathmoe.data import TokenShards

    init = rc["init_from"]
    load_init_weights(model, init["checkpoint"])
    if init.get("restrict_top_paths") is None:
        return None
    n, budget = init["restrict_top_paths"], init["path_tokens"]
    for key, value in (("restrict_top_paths", n), ("path_tokens", budget)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"init_from.{key}={value!r}: expected an integer >= 1")
    out = Path(rc["run_dir"]) / "restricted_paths.json"
    if out.exists():  # a resumed run: the set was fixed when the run started
        return PathRestrictionHook(np.asarray(read_json(out)["paths"], dtype=np.int64))
    val = TokenShards(Path(rc["data_dir"]) / "shards", "val")
    tokens = np.asarray(val.window(0, min(budget, val.num_tokens)))
    seq_len = int(rc["train"].get("seq_len", 128))
    model.to(device)
    paths, counts = find_top_paths(model, tokens, n, min(seq_len, len(tokens)),
                                   int(rc["train"].get("micro_batch_size", 8)), device)
    if rank == 0:
        atomic_write_json(out, {"checkpoint": str(init["checkpoint"]), "restrict_top_paths": n,
                                "num_tokens": int(len(tokens) // min(seq_len, len(tokens)) * min(seq_len, len(tokens))),
                                "paths": paths.tolist(), "counts": counts.tolist()})
    return PathRestrictionHook(paths)
