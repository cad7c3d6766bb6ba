"""Per-GPU training memory of a run before launching it (`pathmoe plan`).

A 16B MoE either fits an 80 GB GPU or fails after queueing for hours; the layout that decides it
(expert-parallel size, ZeRO stage, micro-batch, activation checkpointing) is in the run spec, so
the estimate is computed from the spec alone. Formula (docs/training.md, "Per-GPU memory"):

    N = ranks, EP = expert_parallel_size (deepspeed dispatch; 1 otherwise), Ne = N / EP
    Pd = dense parameters (everything but the experts), Pe = expert parameters (all E of every layer)
    local params  P = Pd + Pe / EP                         a = 2 bytes (bf16) or 4 (fp32)
    params        a * P
    grads         a * P              ZeRO 0-1;   a * (Pd / N + Pe / EP / Ne)   ZeRO 2
    optimizer     K * P              ZeRO 0;     K * (Pd / N + Pe / EP / Ne)   ZeRO 1-2
                  K = 8 (fp32: Adam m, v) or 12 (bf16: fp32 master weights + m + v)
    activations   T = micro_batch * seq_len tokens per rank;
                  per layer  A = T * (a * (10 d + 2 d_kv + k H) + 8 E)  [+ 2 a c k T d, deepspeed buffers]
                  L * A, or with activation checkpointing  L * a * T * d + A
                  + logits  T * V * (a + 8)  (logits, their fp32 copy and its gradient)

(H = the expert's first matrix width: h, or 2h for SwiGLU; c = capacity_factor.) It is an estimate
of what DeepSpeed and the model hold, not a measurement: allocator fragmentation, communication
buckets and the CUDA context (~1-3 GiB) come on top, which is why a plan "fits" only below 90%.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

GIB = 2**30
FIT_FRACTION = 0.9  # headroom for the allocator, comm buckets and the CUDA context


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes per GPU of each part, and the layout they were computed for."""

    params: float
    grads: float
    optimizer: float
    activations: float
    ranks: int
    ep: int
    zero_stage: int

    @property
    def total(self) -> float:
        return self.params + self.grads + self.optimizer + self.activations

    def fits(self, gpu_bytes: float) -> bool:
        return self.total <= FIT_FRACTION * gpu_bytes


def expert_params(model: Mapping[str, Any]) -> int:
    """Parameters of all experts of all layers: L * E * (d * H + h * d)."""
    up = model["expert_hidden"] * (2 if model["expert_activation"] == "swiglu" else 1)
    return model["n_layers"] * model["n_experts"] * (model["d_model"] * up + model["expert_hidden"] * model["d_model"])


def per_gpu_memory(model: Mapping[str, Any], train: Mapping[str, Any], ranks: int, total_params: int) -> MemoryPlan:
    """The formula of the module docstring. `model` is a complete model config (defaults merged),
    `train` the run's train settings, `ranks` its process count, `total_params` all parameters."""
    ep = model["expert_parallel_size"] if model["dispatch"] == "deepspeed" else 1
    if ranks % ep:
        raise ValueError(f"model.expert_parallel_size={ep} must divide the {ranks} training ranks")
    zero, a = train["zero_stage"], (2 if train["precision"] == "bf16" else 4)
    k_opt = 12 if a == 2 else 8
    pe = expert_params(model)
    pd = total_params - pe
    local = pd + pe / ep
    shard = pd / ranks + pe / ep / (ranks // ep)  # this rank's ZeRO partition
    grads = a * (shard if zero >= 2 else local)
    optimizer = k_opt * (shard if zero >= 1 else local)
    return MemoryPlan(params=a * local, grads=grads, optimizer=optimizer, activations=activation_bytes(model, train),
                      ranks=ranks, ep=ep, zero_stage=zero)


def activation_bytes(model: Mapping[str, Any], train: Mapping[str, Any]) -> float:
    """Activations kept for backward at the run's micro-batch (module docstring)."""
    a = 2 if train["precision"] == "bf16" else 4
    tokens = train["micro_batch_size"] * train["seq_len"]
    d, e, k = model["d_model"], model["n_experts"], model["top_k"]
    d_kv = d // model["n_heads"] * model["n_kv_heads"]
    up = model["expert_hidden"] * (2 if model["expert_activation"] == "swiglu" else 1)
    per_token = a * (10 * d + 2 * d_kv + k * up) + 8 * e
    if model["dispatch"] == "deepspeed":
        per_token += 2 * a * model["capacity_factor"] * k * d
    layer = tokens * per_token
    kept = (model["n_layers"] * a * tokens * d + layer) if train.get("activation_checkpointing") else model["n_layers"] * layer
    vocab = model["vocab_size"] or 32000
    return kept + tokens * vocab * (a + 8)


def format_memory(rows: list[tuple[str, MemoryPlan]], gpu_gib: float) -> str:
    """One line per run: GiB per GPU for each part, the layout, and whether it fits `gpu_gib`."""
    lines = [f"Per-GPU training memory (GiB; fits = total <= {FIT_FRACTION:.0%} of {gpu_gib:g} GiB; docs/training.md):",
             f"{'run':<24} {'ranks':>5} {'EP':>3} {'ZeRO':>4} {'params':>8} {'grads':>8} {'optim':>8} "
             f"{'activ':>8} {'total':>8}  fits"]
    for run, m in rows:
        lines.append(f"{run:<24} {m.ranks:>5} {m.ep:>3} {m.zero_stage:>4} {m.params / GIB:>8.1f} {m.grads / GIB:>8.1f} "
                     f"{m.optimizer / GIB:>8.1f} {m.activations / GIB:>8.1f} {m.total / GIB:>8.1f}  "
                     f"{'yes' if m.fits(gpu_gib * GIB) else 'NO'}")
    return "\n".join(lines)
