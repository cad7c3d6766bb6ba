"""Dense building blocks: RMSNorm, rotary embeddings, grouped-query attention, the MoE feed-forward."""

from __future__ import annotations

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


def rope_tables(seq_len: int, head_dim: int, theta: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [T, head_dim] for rotate-half RoPE (computed on the fly: nothing to checkpoint)."""
    inv = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    freqs = torch.outer(torch.arange(seq_len, device=device, dtype=torch.float32), inv)  # [T, hd/2]
    emb = torch.cat([freqs, freqs], dim=-1)  # [T, hd]
    return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, H, T, hd] rotated by position."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return (x.float() * cos + rotated.float() * sin).to(x.dtype)


class Attention(nn.Module):
    """Causal grouped-query attention through `scaled_dot_product_attention`."""

    def __init__(self, cfg: PathMoEConfig) -> None:
        super().__init__()
        self.n_heads, self.n_kv, self.hd = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.q_proj = nn.Linear(cfg.d_model, self.n_heads * self.hd, bias=False)
        self.k_proj = nn.Linear(cfg.d_model, self.n_kv * self.hd, bias=False)
        self.v_proj = nn.Linear(cfg.d_model, self.n_kv * self.hd, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.hd, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.n_heads, self.hd).transpose(1, 2)  # [B, H, T, hd]
        k = self.k_proj(x).view(b, t, self.n_kv, self.hd).transpose(1, 2)  # [B, KV, T, hd]
        v = self.v_proj(x).view(b, t, self.n_kv, self.hd).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if self.n_kv != self.n_heads:
            rep = self.n_heads // self.n_kv
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        if mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
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

    def __init__(self, cfg: PathMoEConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.ffn = MoEFeedForward(cfg)

    def attention_block(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return x + self.attn(self.attn_norm(x), cos, sin, mask)
