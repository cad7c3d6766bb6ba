"""Dense building blocks: RMSNorm, rotary embeddings, grouped-query attention, the MoE feed-forward.

Attention keeps K/V at their `n_kv_heads` (SDPA's `enable_gqa` broadcasts them to the query heads;
torch without it gets the same result from an explicit `repeat_interleave`) and appends them to a
transformers `Cache` when one is given, so generation computes each prefix token once.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from .config import PathMoEConfig
from .moe import Experts, dropless_moe


class RMSNorm(nn.Module):
    """Pre-norm RMSNorm (no mean subtraction, learned scale), computed in fp32 for stability."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (xf * self.weight.float()).to(x.dtype)


def rope_tables(seq_len: int, head_dim: int, theta: float, device: torch.device,
                start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [T, head_dim] of positions start..start+T-1 for rotate-half RoPE (computed on the fly:
    nothing to checkpoint; `start` = tokens already in the KV cache)."""
    inv = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    positions = torch.arange(start, start + seq_len, device=device, dtype=torch.float32)
    freqs = torch.outer(positions, inv)  # [T, hd/2]
    emb = torch.cat([freqs, freqs], dim=-1)  # [T, hd]
    return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, H, T, hd] rotated by position."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return (x.float() * cos + rotated.float() * sin).to(x.dtype)


@lru_cache(maxsize=1)
def sdpa_has_gqa() -> bool:
    """Whether this torch's `scaled_dot_product_attention` takes `enable_gqa` (torch >= 2.5)."""
    q, kv = torch.zeros(1, 2, 1, 8), torch.zeros(1, 1, 1, 8)
    try:
        F.scaled_dot_product_attention(q, kv, kv, enable_gqa=True)
    except TypeError:
        return False
    return True


def grouped_query_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                            use_gqa: bool | None = None) -> torch.Tensor:
    """SDPA of q [B, H, T, hd] over k, v [B, KV, S, hd] (H a multiple of KV) -> [B, H, T, hd].

    `mask` None = causal when T == S, every key when T < S (one new token against its cache);
    else a bool [B|1, 1, T, S] mask. `use_gqa` None = SDPA's `enable_gqa` where this torch has it;
    False = the explicit repeat_interleave fallback (identical numbers, H/KV times the K/V memory).
    """
    causal = mask is None and q.shape[2] == k.shape[2] and q.shape[2] > 1
    if q.shape[1] != k.shape[1]:
        if use_gqa is None:
            use_gqa = sdpa_has_gqa()
        if use_gqa:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, enable_gqa=True)
        rep = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)


class Attention(nn.Module):
    """Causal grouped-query attention through `scaled_dot_product_attention`, with an optional KV cache."""

    def __init__(self, cfg: PathMoEConfig, layer_idx: int = 0) -> None:
        super().__init__()
        self.n_heads, self.n_kv, self.hd = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.layer_idx = layer_idx  # this layer's slot in a transformers Cache
        self.q_proj = nn.Linear(cfg.d_model, self.n_heads * self.hd, bias=False)
        self.k_proj = nn.Linear(cfg.d_model, self.n_kv * self.hd, bias=False)
        self.v_proj = nn.Linear(cfg.d_model, self.n_kv * self.hd, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.hd, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None,
                cache=None) -> torch.Tensor:  # noqa: ANN001  (a transformers Cache)
        """x [B, T, d] -> [B, T, d]; with `cache`, K/V of earlier tokens come from it and these T are appended."""
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.n_heads, self.hd).transpose(1, 2)  # [B, H, T, hd]
        k = self.k_proj(x).view(b, t, self.n_kv, self.hd).transpose(1, 2)  # [B, KV, T, hd]
        v = self.v_proj(x).view(b, t, self.n_kv, self.hd).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)  # [B, KV, S, hd], S = cached + T
        y = grouped_query_attention(q, k, v, mask)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, -1))


class MoEFeedForward(nn.Module):
    """The experts of one layer plus the dispatch that runs them on a given routing decision."""

    def __init__(self, cfg: PathMoEConfig) -> None:
        super().__init__()
        self.dispatch = cfg.dispatch
        n_local = cfg.n_experts // cfg.expert_parallel_size if cfg.dispatch == "deepspeed" else cfg.n_experts
        self.experts = Experts(n_local, cfg.d_model, cfg.expert_hidden, cfg.expert_activation)
        if cfg.dispatch == "deepspeed":
            from .deepspeed_moe import DeepSpeedDispatch, expert_parallel_rank, use_deepspeed_layout  # only when used

            self.experts.first = expert_parallel_rank(cfg.expert_parallel_size) * n_local
            self.experts.total = cfg.n_experts
            self.ds = DeepSpeedDispatch(self.experts, cfg.n_experts, cfg.capacity_factor, cfg.expert_parallel_size)
            use_deepspeed_layout(self)  # per-expert checkpoint files (pathmoe.model.deepspeed_moe)

    def forward(self, x: torch.Tensor, expert_ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """x [N, d], decision [N, k] -> [N, d]."""
        if self.dispatch == "deepspeed":
            return self.ds(x, expert_ids, weights)
        return dropless_moe(x, expert_ids, weights, self.experts)


class DecoderLayer(nn.Module):
    """Pre-norm block; routing is decided outside (by the model's RouterStack) and passed in."""

    def __init__(self, cfg: PathMoEConfig, layer_idx: int = 0) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg, layer_idx)
        self.ffn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.ffn = MoEFeedForward(cfg)

    def attention_block(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None,
                        cache=None) -> torch.Tensor:  # noqa: ANN001  (a transformers Cache)
        return x + self.attn(self.attn_norm(x), cos, sin, mask, cache)
