"""`RoutingHook`: the one seam through which analyses and path restriction steer routing.

Keeping it a plain base class with no-op methods means callers override only what they need and
the model never branches on what kind of hook it was given.
"""

from __future__ import annotations

import torch


class RoutingHook:
    """Observe or replace routing decisions during a forward pass (every method a no-op).

    Mono layers that reuse their block's decision do not call the hook again.
    """

    def begin(self, num_tokens: int) -> None:
        """Called once at the start of each forward with the number of tokens N = B*T."""

    def select(self, layer: int, probs: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Replace the router's top-k choice: return (expert_ids [N, k] long, weights [N, k]) or None.

        `probs` is the full fp32 router softmax [N, E]; weights must stay differentiable, i.e. be
        gathered from `probs` and renormalised. The model re-sorts columns by weight afterwards.
        """
        return None

    def remap(self, layer: int, expert_ids: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rewrite the final choice (e.g. permute expert ids); the default returns it unchanged."""
        return expert_ids, weights
