"""The per-step training log (metrics.jsonl) and the expert-load statistics it carries.

The log is append-only and flushed per line so a killed run leaves every logged step readable;
on resume the lines after the resumed step are cut first, so the final log of an interrupted run
is line-for-line the log of an uninterrupted one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch


def expert_load(routing: Sequence[tuple[torch.Tensor, ...]], n_experts: int) -> dict[str, list]:
    """Per-layer max / min share of the token->expert assignments and the count of dead experts.

    `routing` is the model's `out.routing`: per layer (expert_ids [N, k], ...). One bincount per
    layer, so it is cheap enough to run on every log step.
    """
    loads_max, loads_min, dead = [], [], []
    for layer in routing:
        ids = layer[0].reshape(-1)
        counts = torch.bincount(ids.to(torch.long).cpu(), minlength=n_experts).double()
        frac = counts / max(1, ids.numel())
        loads_max.append(round(float(frac.max()), 6))
        loads_min.append(round(float(frac.min()), 6))
        dead.append(int((counts == 0).sum()))
    return {"expert_load_max": loads_max, "expert_load_min": loads_min, "dead_experts": dead}


class MetricsLog:
    """Append-only JSON-lines log; `truncate_after(step)` drops records of steps > step."""

    def __init__(self, path: str | os.PathLike, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self._fh = None

    def truncate_after(self, step: int) -> None:
        """Keep only complete records with step <= `step` (a torn last line is dropped too)."""
        if not self.enabled or not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                break  # a line torn by a kill: everything after it is untrusted
            if rec.get("step", 0) <= step:
                kept.append(line)
        from pathmoe.io import atomic_write_text
        atomic_write_text(self.path, "".join(f"{x}\n" for x in kept))

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a")
        self._fh.write(json.dumps(record, sort_keys=True) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All records of a metrics.jsonl, in order."""
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]
