"""Turning router logits into decisions, and the auxiliary losses on those decisions.

Order (fixed by the paper's setup): softmax over all experts in fp32, take top-k, renormalise the k
weights. A `RoutingHook` may replace the choice (select) and rewrite it afterwards (remap).
"""

from __future__ import annotations

import torch

from pathmoe.model_rules import LBL_REDUCTIONS

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


def balance_stats(probs: torch.Tensor, expert_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One deciding layer's load-balance statistics from probs [N, E] and expert_ids [N, k].

    Returns (f [E], P [E]): f_i = fraction of the N*k token-slot assignments that went to expert i
    (sums to 1; not differentiable), P_i = mean router probability of expert i (carries the gradient).
    """
    n_experts = probs.shape[-1]
    counts = torch.zeros(n_experts, device=probs.device, dtype=torch.float32)
    counts.index_add_(0, expert_ids.reshape(-1), torch.ones(expert_ids.numel(), device=probs.device))
    return counts / expert_ids.numel(), probs.mean(0)


def load_balancing_loss(probs: torch.Tensor, expert_ids: torch.Tensor) -> torch.Tensor:
    """Switch-Transformer balance loss E * sum_i f_i P_i of one layer (f over the N*k slots).

    Equals 1 when perfectly balanced, whatever k.
    """
    f, p = balance_stats(probs, expert_ids)
    return probs.shape[-1] * (f * p).sum()


def reduce_load_balancing(stats: list[tuple[torch.Tensor, torch.Tensor]], reduction: str, top_k: int) -> torch.Tensor:
    """The model's balance loss from every deciding layer's `balance_stats` (before `lbl_coef`).

    - `sum`: sum over layers of the per-layer Switch loss (f over the N*k slots): L when balanced.
    - `mean`: the form of Qiu et al. (2024)'s code (Hugging Face Mixtral's `load_balancing_loss_func`,
      which concatenates the layers' router logits): E * sum_i F_i P_i with F_i the fraction of
      tokens that chose expert i in any of their k slots (sums to k) and F, P averaged over the
      layers; k when balanced. At equal coefficient it is L/k times weaker per layer than `sum`.
    """
    if reduction not in LBL_REDUCTIONS:
        raise ValueError(f"lbl_reduction={reduction!r} is invalid; allowed: {' | '.join(LBL_REDUCTIONS)}")
    n_experts = stats[0][1].shape[-1]
    if reduction == "sum":
        return torch.stack([n_experts * (f * p).sum() for f, p in stats]).sum()
    f = torch.stack([f for f, _ in stats]).mean(0) * top_k  # [E]: per-token fraction, sums to k
    p = torch.stack([p for _, p in stats]).mean(0)  # [E]
    return n_experts * (f * p).sum()


def z_loss(logits: torch.Tensor) -> torch.Tensor:
    """Router z-loss (ST-MoE): mean squared log-partition, keeps logits from drifting large."""
    return torch.logsumexp(logits.float(), dim=-1).pow(2).mean()
