"""pathmoe.model: the MoE language model with every routing strategy of the paper.

Importing this package registers `PathMoEConfig` / `PathMoEForCausalLM` with the transformers
Auto* factories, so `AutoModelForCausalLM.from_pretrained(dir)` works without trust_remote_code.
"""

from transformers import AutoConfig, AutoModelForCausalLM

from .config import ACTIVATIONS, DISPATCHES, ROUTERS, PathMoEConfig
from .hooks import RoutingHook
from .moe import Experts, dropless_moe, per_expert_loop_moe, per_token_reference
from .routers import RouterStack
from .routing import balance_stats, choose, load_balancing_loss, reduce_load_balancing, z_loss
from .transformer import PathMoEForCausalLM, PathMoEOutput

AutoConfig.register("pathmoe", PathMoEConfig, exist_ok=True)
AutoModelForCausalLM.register(PathMoEConfig, PathMoEForCausalLM, exist_ok=True)

__all__ = [
    "ACTIVATIONS", "DISPATCHES", "ROUTERS", "Experts", "PathMoEConfig", "PathMoEForCausalLM", "PathMoEOutput",
    "RouterStack", "RoutingHook", "balance_stats", "choose", "dropless_moe", "load_balancing_loss",
    "per_expert_loop_moe", "per_token_reference", "reduce_load_balancing", "z_loss",
]
