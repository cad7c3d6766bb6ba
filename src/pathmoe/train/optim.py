"""AdamW parameter groups.

Choice (the paper only says AdamW, wd 0.1): weight decay applies to weight matrices only; biases,
norm gains, scalar temperatures (ndim < 2) and token embeddings are not decayed, as in GPT-NeoX /
OLMo, since shrinking them has no regularising meaning. Frozen parameters (the random router)
never enter the optimizer. Under DeepSpeed MoE (expert-parallel) the groups are further split
per expert data-parallel group, which DeepSpeed requires for a client optimizer under ZeRO.
"""

from __future__ import annotations

from typing import Any

import torch

from pathmoe.train.spec import TrainSpec


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """[{decay params}, {no-decay params}] over trainable parameters, MoE-split when needed."""
    from deepspeed.moe.utils import is_moe_param, split_params_into_different_moe_groups_for_optimizer

    embed_ids = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or id(p) in embed_ids else decay).append(p)
    groups = [{"name": "decay", "params": decay, "weight_decay": weight_decay},
              {"name": "no_decay", "params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if any(is_moe_param(p) for g in groups for p in g["params"]):
        groups = split_params_into_different_moe_groups_for_optimizer(groups)
    return groups


def build_optimizer(model: torch.nn.Module, spec: TrainSpec) -> torch.optim.Optimizer:
    """torch AdamW (no fused-Adam compile) with the spec's lr/betas/eps/decay."""
    return torch.optim.AdamW(param_groups(model, spec.weight_decay), lr=spec.lr, betas=spec.betas,
                             eps=spec.eps)
