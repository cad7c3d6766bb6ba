"""GPU-hour estimate of an experiment before launching it (`pathmoe plan`, `snakemake ... --config plan=1`).

Training dominates a reproduction's cost, so the estimate is the training FLOPs of every run
(`pathmoe.flops`) at an assumed model FLOPs utilisation of a configurable per-GPU peak.
Continuations (path-restricted runs) count only their own steps. Beside the cost, the plan
shows each training's per-GPU memory at its layout (pathmoe.memory).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pathmoe.config import Experiment
from pathmoe.flops import run_gpu_hours, train_tokens

if TYPE_CHECKING:
    from pathmoe.memory import MemoryPlan


@dataclass(frozen=True)
class RunCost:
    run: str
    scale: str
    tokens: int
    gpu_hours: float
    total_params: int
    active_params: int
    gpus: int = 1            # GPUs of its training job (resources.train gpus x nodes)
    job_minutes: int = 60    # the job's time limit (resources.train.runtime)
    stop_margin_s: int = 0   # checkpoint + requeue this long before the limit

    @property
    def wall_hours(self) -> float:
        return self.gpu_hours / self.gpus

    @property
    def jobs(self) -> int:
        """SLURM jobs (the first + its requeues) the training needs at this per-job time limit."""
        usable_s = max(self.job_minutes * 60 - self.stop_margin_s, 60)
        return max(1, math.ceil(self.wall_hours * 3600 / usable_s))


def parameter_counts(model: dict) -> dict[str, int]:
    """Total and active parameters of a model config, built on the meta device (no memory)."""
    return dict(_parameter_counts(tuple(sorted(model.items()))))


@functools.lru_cache(maxsize=None)
def _parameter_counts(items: tuple) -> tuple:
    """Cached by config: the plan asks once for the memory table and once for the GPU-hours."""
    import torch

    from pathmoe.model import PathMoEConfig, PathMoEForCausalLM

    with torch.device("meta"):
        return tuple(PathMoEForCausalLM(PathMoEConfig(**dict(items))).parameter_counts().items())


def run_vocab_size(exp: Experiment, run: str) -> int:
    """The run's vocabulary: the model's own, else its dataset tokenizer's (what training will use)."""
    spec = exp.runs[run]
    if spec.model.get("vocab_size"):
        return int(spec.model["vocab_size"])
    tok = exp.datasets[spec.dataset].get("tokenizer", {})
    return int(tok.get("vocab_size", 32000))


def estimate_gpu_hours(exp: Experiment, gpu_flops: float, mfu: float) -> list[RunCost]:
    """GPU-hours of every training of `exp`, in config order (a shared training counts once)."""
    costs = []
    for run in exp.trained_runs:
        spec = exp.runs[run]
        model = {**spec.model, "vocab_size": run_vocab_size(exp, run)}
        tokens = train_tokens(spec.train)
        counts = parameter_counts(model)
        res = spec.resources["train"]
        costs.append(RunCost(run, spec.scale, tokens, run_gpu_hours(model, spec.train, gpu_flops, mfu),
                             counts["total"], counts["active"], max(1, res["gpus"] * res["nodes"]),
                             res["runtime"], res["stop_margin_s"]))
    return costs


def memory_plans(exp: Experiment) -> list[tuple[str, "MemoryPlan"]]:
    """Per-GPU training memory of every training of `exp` at its layout (pathmoe.memory)."""
    from pathmoe.memory import per_gpu_memory
    from pathmoe.model_rules import MODEL_DEFAULTS

    rows = []
    for run in exp.trained_runs:
        spec = exp.runs[run]
        model = {**spec.model, "vocab_size": run_vocab_size(exp, run)}  # the same key as estimate_gpu_hours
        ranks = spec.resources["train"]["gpus"] * spec.resources["train"]["nodes"] or 1
        total = parameter_counts(model)["total"]
        rows.append((run, per_gpu_memory({**MODEL_DEFAULTS, **model}, spec.train, ranks, total)))
    return rows


def format_plan(costs: list[RunCost], gpu_flops: float, mfu: float) -> str:
    """A table a person reads before launching: one line per run and the total.

    Parameter counts sit beside the cost so iso-parameter questions (router sharing removes
    parameters) are answered before training: `params` is total / active.
    """
    lines = [f"GPU-hour estimate at {gpu_flops / 1e12:.0f} TFLOP/s per GPU and MFU {mfu:.0%}; `jobs`: SLURM jobs "
             "at the run's time limit (resources.train.runtime), each requeueing the next (docs/slurm.md):",
             f"{'run':<24} {'scale':<8} {'params (total / active)':>26} {'tokens':>12} {'GPU-hours':>12}"
             f" {'GPUs':>5} {'wall h':>8} {'limit h':>8} {'jobs':>5}"]
    for c in costs:
        params = f"{_short(c.total_params)} / {_short(c.active_params)}"
        lines.append(f"{c.run:<24} {c.scale:<8} {params:>26} {c.tokens:>12.3g} {c.gpu_hours:>12.1f}"
                     f" {c.gpus:>5} {c.wall_hours:>8.1f} {c.job_minutes / 60:>8.1f} {c.jobs:>5}")
    total = sum(c.gpu_hours for c in costs)
    lines.append(f"{'total':<24} {'':<8} {'':>26} {sum(c.tokens for c in costs):>12.3g} {total:>12.1f}")
    return "\n".join(lines)


def _short(n: int) -> str:
    """Parameter count with 4 significant digits: 931.8M, 16.18B (enough to see router sharing)."""
    for unit, div in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= div:
            return f"{n / div:.4g}{unit}"
    return str(n)
