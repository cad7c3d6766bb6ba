"""The `deepspeed` dispatch: DeepSpeed's MOELayer (capacity, expert parallelism, all-to-all) fed by OUR router.

DeepSpeed's own gates (TopKGate) compute their own routing; here `RoutedGate` only turns the
decisions our `RouterStack` already made into DeepSpeed's sparse-route format (expert index,
slot in the expert's capacity buffer, gate weight), dropping slots beyond capacity like GShard.
So every router of the paper works with this backend unchanged.

The expert tensors stay owned by the MoE feed-forward module as stacked [E_local, ...] parameters
(what `Experts.batched` consumes); the MOELayer only refers to them. They are marked
`allreduce=False` + `group_name` exactly as `deepspeed.moe.experts.Experts` does, so
`split_params_into_different_moe_groups_for_optimizer` and the engine treat them as expert params.

Checkpoints: DeepSpeed writes one file per expert (`layer_{i}_expert_{j}_mp_rank_00_model_states.pt`)
and keeps them out of the dense `mp_rank_00` file only for state-dict keys of the form
`<moe module>.deepspeed_moe.experts.deepspeed_experts.<local id>.<name>`. `use_deepspeed_layout`
gives a feed-forward of this dispatch exactly that state-dict layout (per-expert views of the stacked
tensors, restacked on load), so each rank saves and resumes its own experts. HF exports do not use
it: `dropless_state_dict` gathers every rank's experts into full [E, ...] tensors (the dropless
layout), which any process loads with the dropless dispatch.
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

# DeepSpeed's name for one expert's parameters inside a native MoE module (engine checkpointing
# matches `.deepspeed_moe.experts.deepspeed_experts.<id>.`).
DS_EXPERT_PREFIX = "ds.deepspeed_moe.experts.deepspeed_experts."


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


def _drop_stacked(module: nn.Module, state_dict: dict, prefix: str, local_metadata: Any) -> None:
    """state_dict post-hook of a feed-forward: its stacked `experts.<name>` entries leave; the
    DeepSpeedDispatch child has already put one entry per local expert in their place."""
    for name in ("w_up", "w_down"):
        state_dict.pop(f"{prefix}experts.{name}")


def _per_expert_keys(module: nn.Module, state_dict: dict, prefix: str, local_metadata: Any) -> None:
    """state_dict post-hook of the DeepSpeedDispatch (the engine saves expert files from the MoE
    module's own state dict): `deepspeed_moe.experts.deepspeed_experts.<j>.<name>` per local expert j,
    views of the stacked [E_local, ...] tensors."""
    experts = module.deepspeed_moe.experts.target
    own = DS_EXPERT_PREFIX[len("ds."):]
    for name in ("w_up", "w_down"):
        for j, view in enumerate(getattr(experts, name).detach().unbind(0)):
            state_dict[f"{prefix}{own}{j}.{name}"] = view


def _restack(module: nn.Module, state_dict: dict, prefix: str, local_metadata: Any, strict: bool,
             missing_keys: list, unexpected_keys: list, error_msgs: list) -> None:
    """load_state_dict pre-hook: per-expert entries -> stacked `experts.<name>`; a state dict that
    is already stacked (an HF export, the dropless layout) passes unchanged."""
    for name in ("w_up", "w_down"):
        keys = sorted((k for k in state_dict if k.startswith(prefix + DS_EXPERT_PREFIX) and k.endswith("." + name)),
                      key=lambda k: int(k[len(prefix + DS_EXPERT_PREFIX):].split(".")[0]))
        if keys:
            state_dict[f"{prefix}experts.{name}"] = torch.stack([state_dict.pop(k) for k in keys])


def use_deepspeed_layout(ffn: nn.Module) -> None:
    """Give a feed-forward of the deepspeed dispatch DeepSpeed's per-expert state-dict layout."""
    ffn.ds.register_state_dict_post_hook(_per_expert_keys)
    ffn.register_state_dict_post_hook(_drop_stacked)
    ffn.register_load_state_dict_pre_hook(_restack)


def expert_parallel_rank(ep_size: int) -> int:
    """This process's rank in its expert-parallel group (it holds global experts
    rank*E_local .. (rank+1)*E_local - 1): DeepSpeed's groups, created here if the engine has not
    yet; 0 without expert parallelism or without a process group."""
    if ep_size == 1 or not torch.distributed.is_initialized():
        return 0
    from deepspeed.utils import groups

    groups._create_expert_and_data_parallel(ep_size)  # what the engine does; a no-op when they exist
    return groups._get_expert_parallel_rank(f"ep_size_{ep_size}")


def expert_parallel_group(ffn: nn.Module) -> tuple[Any, int, int]:
    """(process group, this rank's index in it, its size) of the feed-forward's expert-parallel group;
    (None, 0, 1) without expert parallelism."""
    ds = getattr(ffn, "ds", None)
    if ds is None or ds.ep_size == 1:
        return None, 0, 1
    from deepspeed.utils import groups

    name = ds.expert_group_name
    return groups._get_expert_parallel_group(name), groups._get_expert_parallel_rank(name), ds.ep_size


def gather_experts(ffn: nn.Module) -> dict[str, torch.Tensor]:
    """{"w_up": [E, d, H], "w_down": [E, h, d]}: every rank's local experts in global expert order
    (rank r of the expert-parallel group holds experts r*E_local .. (r+1)*E_local - 1, DeepSpeed's
    placement). Collective over that group: each of its ranks must call it."""
    group, _, size = expert_parallel_group(ffn)
    out = {}
    for name in ("w_up", "w_down"):
        local = getattr(ffn.experts, name).detach()
        if size == 1:
            out[name] = local
            continue
        parts = [torch.empty_like(local) for _ in range(size)]
        torch.distributed.all_gather(parts, local.contiguous(), group=group)
        out[name] = torch.cat(parts, 0)
    return out


def dropless_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights in the dropless layout: `layers.<l>.ffn.experts.<name>` holding all E experts
    (gathered over each expert-parallel group) instead of DeepSpeed's per-local-expert entries.
    Collective: every rank of an expert-parallel group must call it."""
    state = model.state_dict()
    for name, module in model.named_modules():
        if getattr(module, "dispatch", None) != "deepspeed" or not hasattr(module, "ds"):
            continue
        prefix = f"{name}." if name else ""
        for key in [k for k in state if k.startswith(prefix + DS_EXPERT_PREFIX)]:
            del state[key]
        for pname, full in gather_experts(module).items():
            state[f"{prefix}experts.{pname}"] = full
    return state
