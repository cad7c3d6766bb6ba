"""Random training windows, a pure function of (seed, step, micro-step, rank).

Because the windows depend on nothing but those four integers, a resumed run sees exactly the
batches the uninterrupted run would have seen, with no sampler state in the checkpoint; and
ranks draw independent windows without any coordination. The training loop passes the step's
global micro-batch index (micro-step x world size + rank) with rank 0, so a step sees the same
windows whatever the number of processes it is split over (1 rank x 2 micro-steps = 2 ranks x 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def sample_windows(tokens: Any, batch_size: int, window: int, seed: int, step: int,
                   micro_step: int, rank: int) -> torch.Tensor:
    """Return `batch_size` windows of `window` consecutive tokens as a long tensor [B, window].

    `tokens` is a 1-D array, or a `pathmoe.data.TokenShards` (read window by window across shard
    boundaries, so a multi-shard corpus is never loaded into memory).
    """
    n = int(tokens.shape[0]) if isinstance(tokens, np.ndarray) else int(tokens.num_tokens)
    if n < window:
        raise ValueError(f"train split has {n} tokens, fewer than one window of seq_len+1={window}")
    rng = np.random.default_rng([seed, step, micro_step, rank])
    starts = rng.integers(0, n - window + 1, size=batch_size)
    if isinstance(tokens, np.ndarray):
        rows = np.asarray(tokens[starts[:, None] + np.arange(window)[None, :]], dtype=np.int64)  # [B, window]
    else:
        rows = np.stack([tokens.window(int(s), window) for s in starts])
    return torch.from_numpy(rows)
