"""Turning router logits into decisions, and the auxiliary losses on those decisions.

Order (fixed by the paper's setup): softmax over all experts in fp32, take top-k, renormalise the k
weights. A `RoutingHook` may replace the choice (select) and rewrite it afterwards (remap).
"""

from __future__ import annotations

import torch

from .hooks import RoutingHook


def choose(
    layer: int, probs: torch.Tensor, k: int, hook: RoutingHook | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k decision from probs [N, E] fp32 -> (expert_ids [N, k] long, weights [N, k] fp32).

    Columns are sorted by weight (column 0 = top-1); the k weights sum to one.
    """
    chosen = hook.select(layer, probs, k) if hook is not None else None
    if chosen is None:
        weights, ids = probs.topk(k, dim=-1)  # sorted, descending
        weights = weights / weights.sum(-1, keepdim=True)
    else:
        ids, weights = chosen
        weights, order = weights.float().sort(dim=-1, descending=True)
        ids = ids.long().gather(-1, order)
    if hook is not None:
        ids, weights = hook.remap(layer, ids, weights)
    return ids, weights


def load_balancing_loss(probs: torch.Tensor, expert_ids: torch.Tensor) -> torch.Tensor:
    """Switch-Transformer balance loss E * sum_i f_i P_i for one layer.

    f_i = fraction of the N*k token-slot assignments that went to expert i (not differentiable),
    P_i = mean router probability of expert i (carries the gradient). Equals 1 when perfectly balanced.
    """
    n_experts = probs.shape[-1]
    counts = torch.zeros(n_experts, device=probs.device, dtype=torch.float32)
    counts.index_add_(0, expert_ids.reshape(-1), torch.ones(expert_ids.numel(), device=probs.device))
    f = counts / expert_ids.numel()
    return n_experts * (f * probs.mean(0)).sum()


def z_loss(logits: torch.Tensor) -> torch.Tensor:
    """Router z-loss (ST-MoE): mean squared log-partition, keeps logits from drifting large."""
    return torch.logsumexp(logits.float(), dim=-1).pow(2).mean()
