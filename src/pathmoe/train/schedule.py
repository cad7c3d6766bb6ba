"""Learning-rate schedule: linear warmup to the peak, then cosine decay to min_lr_ratio * peak.

It is a pure function of the optimizer step, so resuming needs no scheduler state beyond the
step counter (DeepSpeed still checkpoints the LambdaLR, which stores only that counter).
"""

from __future__ import annotations

import math


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_lr_ratio: float) -> float:
    """Multiplier of the peak lr for the update made at 0-based optimizer step `step`.

    Warmup is (step + 1) / warmup so the very first update already moves (a zero first lr would
    waste a step); after warmup the cosine goes from 1 at `warmup_steps` to `min_lr_ratio` at
    `total_steps - 1` and stays there.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - 1 - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
