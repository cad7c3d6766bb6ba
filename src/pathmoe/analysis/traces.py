"""Routing traces: run a checkpoint over a fixed held-out token set and keep every routing decision.

Every path analysis reads only these traces, so a trace file is the single, cheap-to-share artifact
of a checkpoint's routing behaviour (a smoke checkpoint's traces are a few MB).
Layout (docs/ARCHITECTURE.md): `experts` [tokens, layers, k] int16/int32 sorted by weight,
`weights` float32 same shape, `tokens` int32 [tokens], optional `router_entropy_bits` float16
[tokens, layers].
"""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from pathmoe.io import atomic_path

REQUIRED_KEYS = ("experts", "weights", "tokens")
OPTIONAL_KEYS = ("router_entropy_bits",)


def windows(tokens: np.ndarray, seq_len: int) -> np.ndarray:
    """Non-overlapping windows [num_windows, seq_len] of `tokens` (a short tail is dropped)."""
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    tokens = np.asarray(tokens)
    count = len(tokens) // seq_len
    if count == 0:
        raise ValueError(f"need at least seq_len={seq_len} tokens, got {len(tokens)}")
    return tokens[: count * seq_len].reshape(count, seq_len)


def batches(tokens: np.ndarray, seq_len: int, batch_size: int, desc: str) -> Iterator[torch.Tensor]:
    """Long tensors [B, seq_len] over the windows of `tokens`, with a progress bar."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    win = windows(tokens, seq_len)
    for start in tqdm(range(0, len(win), batch_size), desc=desc, leave=False):
        yield torch.from_numpy(win[start:start + batch_size].astype(np.int64))


def entropy_bits(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (bits) of each row of a probability matrix [N, E] -> [N] (0 log 0 = 0)."""
    p = probs.float()
    return -(torch.special.xlogy(p, p).sum(-1)) / np.log(2.0)


def _expert_dtype(num_experts: int) -> np.dtype:
    return np.dtype(np.int16) if num_experts <= np.iinfo(np.int16).max else np.dtype(np.int32)


def assemble(tokens: list[np.ndarray], experts: list[np.ndarray], weights: list[np.ndarray],
             entropy: list[np.ndarray], num_experts: int) -> dict[str, np.ndarray]:
    """Concatenate per-batch pieces into the traces dict (shared by native and HF collection)."""
    return {
        "experts": np.concatenate(experts).astype(_expert_dtype(num_experts)),
        "weights": np.concatenate(weights).astype(np.float32),
        "tokens": np.concatenate(tokens).astype(np.int32),
        "router_entropy_bits": np.concatenate(entropy).astype(np.float16),
    }


@torch.no_grad()
def collect_traces(model, tokens: np.ndarray, seq_len: int, batch_size: int = 8,
                   device: str | torch.device = "cpu") -> dict[str, np.ndarray]:
    """Routing traces of a `PathMoEForCausalLM` over non-overlapping windows of `tokens`.

    Rows follow token order (window by window), so `traces["tokens"][i]` is the token whose
    routing is `traces["experts"][i]`. The model must already be on `device`.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    pieces: dict[str, list[np.ndarray]] = {"tokens": [], "experts": [], "weights": [], "entropy": []}
    try:
        for x in batches(tokens, seq_len, batch_size, "routing traces"):
            out = model(x.to(device), output_routing=True)
            if not out.routing:
                raise ValueError("model returned no routing (out.routing is empty); is it a pathmoe MoE model?")
            pieces["tokens"].append(x.reshape(-1).numpy())
            pieces["experts"].append(torch.stack([r[0] for r in out.routing], 1).cpu().numpy())  # [N, L, k]
            pieces["weights"].append(torch.stack([r[1] for r in out.routing], 1).float().cpu().numpy())
            pieces["entropy"].append(torch.stack([entropy_bits(r[2]) for r in out.routing], 1).cpu().numpy())
    finally:
        model.train(was_training)
    return assemble(pieces["tokens"], pieces["experts"], pieces["weights"], pieces["entropy"],
                    int(model.config.n_experts))


def validate_traces(traces: dict[str, np.ndarray], where: str = "traces") -> dict[str, np.ndarray]:
    """Check keys, ranks and matching shapes; returns `traces` (raises ValueError naming the problem)."""
    missing = [key for key in REQUIRED_KEYS if key not in traces]
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}; required {list(REQUIRED_KEYS)}")
    experts, weights, tokens = traces["experts"], traces["weights"], traces["tokens"]
    if experts.ndim != 3 or 0 in experts.shape or not np.issubdtype(experts.dtype, np.integer):
        raise ValueError(f"{where}: 'experts' must be an integer [tokens, layers, k] array, "
                         f"got {experts.dtype} {experts.shape}")
    if weights.shape != experts.shape:
        raise ValueError(f"{where}: 'weights' shape {weights.shape} != 'experts' shape {experts.shape}")
    if tokens.shape != experts.shape[:1]:
        raise ValueError(f"{where}: 'tokens' shape {tokens.shape} != ({experts.shape[0]},)")
    if "router_entropy_bits" in traces and traces["router_entropy_bits"].shape != experts.shape[:2]:
        raise ValueError(f"{where}: 'router_entropy_bits' shape {traces['router_entropy_bits'].shape} "
                         f"!= {experts.shape[:2]}")
    if experts.min() < 0:
        raise ValueError(f"{where}: 'experts' holds a negative expert id ({int(experts.min())})")
    return traces


def save_traces(path: str | os.PathLike, traces: dict[str, np.ndarray]) -> None:
    """Write traces atomically as an uncompressed .npz (validated first)."""
    validate_traces(traces, str(path))
    keep = {key: traces[key] for key in REQUIRED_KEYS + OPTIONAL_KEYS if key in traces}
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **keep)


def load_traces(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read and validate a traces .npz."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"traces file not found: {path}")
    with np.load(path, allow_pickle=False) as data:
        traces = {key: data[key] for key in data.files}
    return validate_traces(traces, str(path))


def mean_entropy_per_layer(traces: dict[str, np.ndarray]) -> dict[str, list]:
    """Fig 8a (`entropy.json`): mean over tokens of the full-softmax router entropy at each layer."""
    if "router_entropy_bits" not in traces:
        raise ValueError("traces lack 'router_entropy_bits' (needed for the entropy analysis); "
                         "re-collect them with `pathmoe analyze traces`")
    ent = traces["router_entropy_bits"]
    mean = ent.mean(axis=0, dtype=np.float64)  # accumulates in fp64 without a full copy
    return {"layers": list(range(ent.shape[1])), "mean_entropy_bits": mean.tolist()}
