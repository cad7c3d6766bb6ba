"""Validated training settings: the run spec's `train` dict as a typed, checked object.

Every bad value is caught here, before DeepSpeed or the model is touched, with a one-line error
naming the key and what is allowed, so a misconfigured cluster job fails in seconds, not after
queueing and JIT-compiling.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from pathmoe.tracker_rules import REPLACED_KEY, check_trackers

PRECISIONS = ("fp32", "bf16")
ON_DATA_CHANGE = ("restart", "refuse")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainSpec:
    steps: int = 300
    micro_batch_size: int = 8
    global_batch_size: int = 16
    seq_len: int = 128
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 30
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    grad_clip: float = 1.0
    precision: str = "fp32"
    zero_stage: int = 0
    device: str = "auto"
    log_every: int = 10
    ckpt_every: int = 100
    export_every: int = 50
    export_steps: tuple[int, ...] = field(default_factory=tuple)
    keep_exports: int = 5
    trackers: tuple[str, ...] = field(default_factory=tuple)  # pathmoe.tracker_rules.TRACKERS
    compile: bool = False
    activation_checkpointing: bool = False
    threads: int | None = None  # torch intra-op threads per process (None: torch's default)
    on_data_change: str = "restart"  # checkpoints trained on other data: "restart" from scratch or "refuse"

    def grad_accum(self, world_size: int) -> int:
        """Micro-steps per optimizer step so that micro * accum * world == global batch."""
        per_step = self.micro_batch_size * world_size
        if self.global_batch_size % per_step:
            raise ValueError(
                f"train.global_batch_size={self.global_batch_size} is not divisible by "
                f"micro_batch_size*world_size={self.micro_batch_size}*{world_size}={per_step}")
        return self.global_batch_size // per_step


_INT_MIN = {"steps": 1, "micro_batch_size": 1, "global_batch_size": 1, "seq_len": 1, "warmup_steps": 0,
            "log_every": 1, "ckpt_every": 1, "export_every": 1, "keep_exports": 1, "zero_stage": 0}


def parse_train_spec(train: dict[str, Any]) -> TrainSpec:
    """Build a TrainSpec from the run spec's `train` dict, rejecting unknown keys and bad values."""
    if not isinstance(train, dict):
        raise ValueError(f"train: expected a mapping, got {type(train).__name__}")
    known = {f.name for f in dataclasses.fields(TrainSpec)}
    if REPLACED_KEY[0] in train:
        raise ValueError(REPLACED_KEY[1])
    unknown = sorted(set(train) - known)
    if unknown:
        raise ValueError(f"train.{unknown[0]}: unknown key; allowed: {', '.join(sorted(known))}")
    kw = dict(train)
    for key, lo in _INT_MIN.items():
        if key in kw and (isinstance(kw[key], bool) or not isinstance(kw[key], int) or kw[key] < lo):
            raise ValueError(f"train.{key}={kw[key]!r}: expected an integer >= {lo}")
    for key in ("lr", "min_lr_ratio", "weight_decay", "eps", "grad_clip"):
        if key in kw and (not isinstance(kw[key], (int, float)) or isinstance(kw[key], bool) or kw[key] < 0):
            raise ValueError(f"train.{key}={kw[key]!r}: expected a number >= 0")
    if kw.get("threads") is not None and (not isinstance(kw["threads"], int) or kw["threads"] < 1):
        raise ValueError(f"train.threads={kw['threads']!r}: expected null or an integer >= 1")
    if kw.get("precision", "fp32") not in PRECISIONS:
        raise ValueError(f"train.precision={kw['precision']!r}: allowed {', '.join(PRECISIONS)}")
    if kw.get("on_data_change", "restart") not in ON_DATA_CHANGE:
        raise ValueError(f"train.on_data_change={kw['on_data_change']!r}: allowed {', '.join(ON_DATA_CHANGE)}")
    if kw.get("device", "auto") not in DEVICES:
        raise ValueError(f"train.device={kw['device']!r}: allowed {', '.join(DEVICES)}")
    if kw.get("zero_stage", 0) > 3:
        raise ValueError(f"train.zero_stage={kw['zero_stage']!r}: allowed 0, 1, 2, 3")
    if kw.get("min_lr_ratio", 0.1) > 1:
        raise ValueError(f"train.min_lr_ratio={kw['min_lr_ratio']!r}: expected a number in [0, 1]")
    if "betas" in kw:
        b = kw["betas"]
        if not (isinstance(b, (list, tuple)) and len(b) == 2 and all(0 <= float(x) < 1 for x in b)):
            raise ValueError(f"train.betas={b!r}: expected two numbers in [0, 1)")
        kw["betas"] = (float(b[0]), float(b[1]))
    if "trackers" in kw:
        kw["trackers"] = tuple(check_trackers(kw["trackers"]))
    if "export_steps" in kw:
        s = kw["export_steps"]
        if not isinstance(s, (list, tuple)) or not all(isinstance(x, int) and x >= 1 for x in s):
            raise ValueError(f"train.export_steps={s!r}: expected a list of integers >= 1")
        kw["export_steps"] = tuple(sorted(set(s)))
    return TrainSpec(**kw)
