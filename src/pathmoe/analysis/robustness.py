"""Permutation robustness (Fig 8b): perplexity when routing decisions are scrambled with probability p.

For each layer we draw one fixed random *derangement* pi_l of the expert indices (a permutation
with no fixed point, so a permuted decision always lands on a different expert and p is exactly the
expected fraction of changed decisions). Each (token, layer) decision is permuted independently
with probability p: all k expert ids of that token at that layer go through pi_l, the weights stay.
p = 0 draws the masks but changes nothing, so its perplexity equals the unperturbed one exactly.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from pathmoe.model import RoutingHook

from .traces import batches, windows


def derangement(n: int, generator: torch.Generator) -> torch.Tensor:
    """Uniform random cyclic permutation of 0..n-1 (no fixed points when n > 1)."""
    order = torch.randperm(n, generator=generator)
    perm = torch.empty(n, dtype=torch.long)
    perm[order] = order.roll(-1)  # order[i] -> order[i+1]
    return perm


class PermutationHook(RoutingHook):
    """Permute each (token, layer) decision with probability `p` through a fixed per-layer derangement."""

    def __init__(self, p: float, num_layers: int, num_experts: int, seed: int = 0):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must lie in [0, 1], got {p}")
        gen = torch.Generator().manual_seed(seed)
        self.p = float(p)
        self.perms = [derangement(num_experts, gen) for _ in range(num_layers)]  # [L] x [E]
        self.mask_gen = torch.Generator().manual_seed(seed + 1)
        self.permuted = 0  # decisions changed so far
        self.total = 0

    def remap(self, layer: int, expert_ids: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flip = torch.rand(expert_ids.shape[0], generator=self.mask_gen) < self.p  # [N]
        self.permuted += int(flip.sum())
        self.total += flip.numel()
        if not flip.any():
            return expert_ids, weights
        perm = self.perms[layer].to(expert_ids.device)
        flip = flip.to(expert_ids.device)[:, None]
        return torch.where(flip, perm[expert_ids], expert_ids), weights


@torch.no_grad()
def perplexity(model, tokens: np.ndarray, seq_len: int, batch_size: int = 8, device: str | torch.device = "cpu",
               routing_hook: RoutingHook | None = None) -> float:
    """exp(mean next-token NLL) over non-overlapping windows of `tokens` (within-window prediction)."""
    device = torch.device(device)
    total, count = 0.0, 0
    for x in batches(tokens, seq_len, batch_size, "perplexity"):
        x = x.to(device)
        logits = model(x, routing_hook=routing_hook).logits.float()  # [B, T, V]
        nll = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="sum")
        total += float(nll)
        count += x[:, 1:].numel()
    if count == 0:
        raise ValueError(f"seq_len={seq_len} leaves no next-token predictions (need seq_len >= 2)")
    return math.exp(total / count)


def check_p_values(p_values: list[float]) -> None:
    """Raise ValueError naming the first p outside [0, 1]: checked before any forward pass, not after."""
    if not p_values:
        raise ValueError("p_values must list at least one probability")
    for p in p_values:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"permutation probability p={p!r}: allowed are values in [0, 1]")


def permutation_robustness(model, tokens: np.ndarray, p_values: list[float], seq_len: int, batch_size: int = 8,
                           device: str | torch.device = "cpu", seed: int = 0, repeats: int = 1) -> dict:
    """The `robustness.json` record: perplexity at each p (mean over `repeats` seeds) and % degradation.

    degradation_pct = 100 * (ppl(p) / ppl_unperturbed - 1), with the unperturbed perplexity measured
    without any hook.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    check_p_values(p_values)
    was_training = model.training
    model.eval()
    cfg = model.config
    try:
        base = perplexity(model, tokens, seq_len, batch_size, device)
        ppl, changed = [], []
        for p in p_values:
            runs, frac = [], []
            for r in range(repeats):
                hook = PermutationHook(p, cfg.n_layers, cfg.n_experts, seed=seed + 1000 * r)
                runs.append(perplexity(model, tokens, seq_len, batch_size, device, hook))
                frac.append(hook.permuted / max(hook.total, 1))
            ppl.append(float(np.mean(runs)))
            changed.append(float(np.mean(frac)))
    finally:
        model.train(was_training)
    return {"p": [float(p) for p in p_values], "ppl": ppl,
            "degradation_pct": [100.0 * (v / base - 1.0) for v in ppl],
            "ppl_unperturbed": base, "permuted_fraction": changed, "repeats": repeats, "seed": seed,
            "num_tokens": int(windows(tokens, seq_len).size)}  # the whole windows scored (a short tail is dropped)
