"""The `deepspeed` dispatch: DeepSpeed's MOELayer (capacity, expert parallelism, all-to-all) fed by OUR router.

DeepSpeed's own gates (TopKGate) compute their own routing; here `RoutedGate` only turns the
decisions our `RouterStack` already made into DeepSpeed's sparse-route format (expert index,
slot in the expert's capacity buffer, gate weight), dropping slots beyond capacity like GShard.
So every router of the paper works with this backend unchanged.

The expert tensors stay owned by the MoE feed-forward module (same state-dict keys as the
dropless dispatch, so checkpoints are interchangeable); the MOELayer only refers to them.
They are marked `allreduce=False` + `group_name` exactly as `deepspeed.moe.experts.Experts` does,
so `split_params_into_different_moe_groups_for_optimizer` and the engine treat them as expert params.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from deepspeed.moe.layer import MoE
from deepspeed.moe.sharded_moe import MOELayer
from torch import nn

from .moe import Experts


class RoutedGate(nn.Module):
    """A parameter-free DeepSpeed gate that replays precomputed (expert_ids, weights)."""

    def __init__(self, n_experts: int, capacity_factor: float, min_capacity: int = 4) -> None:
        super().__init__()
        self.n_experts = n_experts
        self.capacity_factor = capacity_factor
        self.min_capacity = min_capacity
        self.ep_group = None

    def _set_ep_group(self, ep_group: Any) -> None:
        self.ep_group = ep_group

    def forward(self, x: torch.Tensor, decision: tuple[torch.Tensor, torch.Tensor], sparse_routes: bool = True,
                use_tutel: bool = False) -> tuple:
        ids, weights = decision  # [S, k] each
        n_tokens, k = ids.shape
        # Capacity from shapes only: no host-device sync, and equal on every expert-parallel rank.
        capacity = max(math.ceil(self.capacity_factor * k * n_tokens / self.n_experts), self.min_capacity)
        route_ids = ids.T.reshape(-1)  # [k*S], priority: all top-1 slots first, then top-2, ... (GShard)
        one_hot = F.one_hot(route_ids, self.n_experts)  # [k*S, E]
        position = (one_hot.cumsum(0) - 1).gather(1, route_ids[:, None])[:, 0]  # slot in its expert buffer
        kept = position < capacity
        indices = torch.where(kept, route_ids, torch.full_like(route_ids, -1)).view(k, n_tokens)
        locations = (position * kept).view(k, n_tokens)
        gates = (weights.T.float() * kept.view(k, n_tokens))  # dropped slots contribute nothing
        exp_counts = one_hot.sum(0).detach()
        l_aux = weights.new_zeros((), dtype=torch.float32)  # our balance loss is computed by the model
        return l_aux, capacity, self.n_experts, indices, locations, gates, exp_counts


class _LocalExperts(nn.Module):
    """Adapter from DeepSpeed's [ep, E_local, C, d] buffer to `Experts.batched` ([E_local, ep*C, d])."""

    def __init__(self, experts: Experts) -> None:
        super().__init__()
        object.__setattr__(self, "target", experts)  # a reference, not a child: no duplicate state-dict keys

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ep, n_local, cap, d = x.shape
        y = self.target.batched(x.transpose(0, 1).reshape(n_local, ep * cap, d))  # [E_local, ep*C, d]
        return y.view(n_local, ep, cap, d).transpose(0, 1)


class DeepSpeedDispatch(MoE):
    """`deepspeed.moe.layer.MoE` subclass (so the engine detects MoE layers and builds EP groups)."""

    def __init__(self, experts: Experts, n_experts: int, capacity_factor: float, ep_size: int = 1) -> None:
        nn.Module.__init__(self)  # MoE.__init__ would build its own gate and per-expert copies
        self.use_residual = False
        self.enable_expert_tensor_parallelism = False
        self.ep_size = ep_size
        self.expert_group_name = f"ep_size_{ep_size}"
        self.num_experts = n_experts
        self.num_local_experts = n_experts // ep_size
        for p in experts.parameters():
            p.allreduce = False
            p.group_name = self.expert_group_name
        self.deepspeed_moe = MOELayer(RoutedGate(n_experts, capacity_factor), _LocalExperts(experts),
                                      self.expert_group_name, ep_size, self.num_local_experts)

    def forward(self, x: torch.Tensor, expert_ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """x [N, d], decision [N, k] -> [N, d]; creates the 1-rank EP group lazily if no engine did."""
        if self.deepspeed_moe.ep_group is None:
            if not torch.distributed.is_initialized():
                raise RuntimeError("dispatch='deepspeed' needs torch.distributed initialised (deepspeed.init_distributed); "
                                   "for single-process use load the model with dispatch='dropless'")
            self.set_deepspeed_parallelism()
        return self.deepspeed_moe(x, (expert_ids, weights))
