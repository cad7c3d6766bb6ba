"""Validation perplexity on the held-out token shards: token-weighted and deterministic.

The first `n_tokens` predictions of the val split are scored in non-overlapping windows of
`seq_len` (each window sees only its own prefix, as in training), and ppl = exp(total NLL / tokens).
Fixed windows over a fixed token count make the number comparable across checkpoints and runs.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm


@torch.no_grad()
def sum_nll(model, tokens: np.ndarray, seq_len: int, batch_size: int, device: torch.device) -> tuple[float, int]:
    """(sum of next-token NLL, number of predicted tokens) over `tokens` in windows of `seq_len`."""
    n_pred = len(tokens) - 1
    starts = list(range(0, n_pred, seq_len))
    total, count = 0.0, 0
    full = [s for s in starts if s + seq_len <= n_pred]
    tail = [s for s in starts if s + seq_len > n_pred]
    batches = [full[i:i + batch_size] for i in range(0, len(full), batch_size)] + [[s] for s in tail]
    for batch in tqdm(batches, desc="val ppl", leave=False):
        length = min(seq_len, n_pred - batch[0])
        window = np.stack([tokens[s:s + length + 1] for s in batch]).astype(np.int64)  # [B, L+1]
        x = torch.from_numpy(window).to(device)
        logits = model(x[:, :-1]).logits.float()  # [B, L, V]
        nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1), reduction="sum")
        total += nll.item()
        count += x[:, 1:].numel()
    return total, count


def validation_perplexity(model, shards_dir: str | Path, seq_len: int, n_tokens: int,
                          batch_size: int = 8, device: str | torch.device | None = None) -> float:
    """exp(mean NLL) of the first `n_tokens` next-token predictions of the val split."""
    from pathmoe.data import TokenShards

    if seq_len < 1 or n_tokens < 1 or batch_size < 1:
        raise ValueError(f"seq_len, n_tokens, batch_size must be >= 1, got {seq_len}, {n_tokens}, {batch_size}")
    tokens = np.asarray(TokenShards(shards_dir, "val").tokens)
    if len(tokens) < 2:
        raise ValueError(f"{shards_dir}: val split has {len(tokens)} tokens, need >= 2")
    if len(tokens) - 1 < n_tokens:
        warnings.warn(f"val split has only {len(tokens) - 1} predictable tokens < ppl_tokens={n_tokens}; using all")
    tokens = tokens[: n_tokens + 1]
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        total, count = sum_nll(model, tokens, seq_len, batch_size, dev)
    finally:
        model.train(was_training)
    return math.exp(total / count)
