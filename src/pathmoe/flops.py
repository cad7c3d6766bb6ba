"""Training FLOPs of a PathMoE model: model FLOPs utilisation (MFU) and GPU-hour estimates.

Convention (PaLM, Chowdhery et al. 2022, appendix B): a training token costs
    6 * N_matmul + 12 * L * T * d
FLOPs, where N_matmul counts every weight a token multiplies in the forward pass (attention
projections, its top-k experts' matrices, the router, the LM head; not the input embedding, which
is a lookup, nor norms) and the second term is attention's score and value products (QK^T and AV:
2 * 2 * T * d multiply-adds per token and layer forward, x3 for forward+backward). We do not halve
the attention term for causal masking, as PaLM does not; MFU numbers are comparable with theirs.
"""

from __future__ import annotations

from typing import Any, Mapping

from pathmoe.model_rules import MODEL_DEFAULTS


def matmul_params_per_token(model: Mapping[str, Any]) -> int:
    """Weights one token multiplies in a forward pass (the `N` of 6N); unset keys take the model defaults."""
    model = {**MODEL_DEFAULTS, **model}
    d, L = model["d_model"], model["n_layers"]
    n_heads, n_kv = model["n_heads"], model["n_kv_heads"]
    head_dim = d // n_heads
    attn = d * n_heads * head_dim + 2 * d * n_kv * head_dim + n_heads * head_dim * d
    mats = 3 if model["expert_activation"] == "swiglu" else 2
    experts = model["top_k"] * mats * d * model["expert_hidden"]
    router = d * model["n_experts"]
    lm_head = d * model["vocab_size"]
    return L * (attn + experts + router) + lm_head


def train_flops_per_token(model: Mapping[str, Any], seq_len: int) -> float:
    """Forward+backward FLOPs per trained token at context length `seq_len`."""
    model = {**MODEL_DEFAULTS, **model}
    attention = 12 * model["n_layers"] * seq_len * model["d_model"]
    return 6.0 * matmul_params_per_token(model) + attention


def mfu(model: Mapping[str, Any], seq_len: int, tokens_per_s_per_gpu: float, peak_flops: float) -> float:
    """Model FLOPs utilisation: achieved model FLOP/s per GPU over the GPU's peak FLOP/s."""
    return train_flops_per_token(model, seq_len) * tokens_per_s_per_gpu / peak_flops


def train_tokens(train: Mapping[str, Any]) -> int:
    """Tokens a run trains on: steps x global batch x sequence length."""
    return train["steps"] * train["global_batch_size"] * train["seq_len"]


def run_gpu_hours(model: Mapping[str, Any], train: Mapping[str, Any], gpu_flops: float, mfu_assumed: float) -> float:
    """GPU-hours to train a run: its total FLOPs at `mfu_assumed` of `gpu_flops` per GPU."""
    return train_tokens(train) * train_flops_per_token(model, train["seq_len"]) / (gpu_flops * mfu_assumed) / 3600.0
