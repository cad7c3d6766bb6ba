"""Throughput and peak memory as Table 1 reports them (per GPU = per process)."""

from __future__ import annotations

import resource
import sys
import time

import torch


def peak_mem_gib(device: torch.device) -> float:
    """Peak allocated accelerator memory on CUDA; peak resident set size of the process on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**30 if sys.platform == "darwin" else 2**20)


class Throughput:
    """Tokens per second over the steps after `warmup` steps (compile/JIT/allocator warm-up).

    The clock stops at the last finished step, so work after it (the final export) is not counted.
    """

    def __init__(self, tokens_per_step: int, warmup: int, device: torch.device) -> None:
        self.tokens_per_step = tokens_per_step
        self.warmup = warmup
        self.device = device
        self.steps = 0
        self.t0: float | None = None
        self.counted = 0
        self.t_last: float | None = None
        if warmup == 0:
            self.t0 = self._now()

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def step_done(self) -> None:
        self.steps += 1
        if self.steps == self.warmup:
            self.t0 = self._now()
        elif self.steps > self.warmup:
            self.counted += 1
            self.t_last = self._now()

    def tokens_per_s(self) -> float:
        """Per-process tokens/s after warm-up (0.0 if no step was timed yet)."""
        if self.t0 is None or self.t_last is None:
            return 0.0
        return self.counted * self.tokens_per_step / max(self.t_last - self.t0, 1e-9)
