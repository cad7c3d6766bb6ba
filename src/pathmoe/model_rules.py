"""What a valid model config is, without importing torch or transformers.

`PathMoEConfig.validate` and the experiment-config loader share these rules, so every Snakemake
start (which validates every run's model before any job) stays fast: the loader checks model
dicts here instead of constructing transformers configs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

ROUTERS = ("linear", "random", "xmoe", "recurrent", "mono", "lowrank")
# Routers whose parameters (linear, xmoe) or decisions (mono) can be shared within blocks of layers.
BLOCK_ROUTERS = ("linear", "xmoe", "mono")
DISPATCHES = ("dropless", "deepspeed")
ACTIVATIONS = ("gelu", "swiglu")
# How the load-balancing loss combines layers (pathmoe.model.routing.reduce_load_balancing).
LBL_REDUCTIONS = ("mean", "sum")
_POSITIVE_INTS = ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "n_experts", "top_k",
                  "expert_hidden", "max_seq_len", "lowrank_rank", "recurrent_hidden", "xmoe_dim",
                  "expert_parallel_size")

@dataclasses.dataclass(kw_only=True)
class ModelFields:
    """The model keys and their defaults: the paper's 0.9B model (Table 5).

    Declared once, here, without torch or transformers: `PathMoEConfig` inherits these fields
    (transformers 5 configs are dataclasses), and the experiment loader reads MODEL_DEFAULTS.
    """

    vocab_size: int = 32000
    d_model: int = 1280
    n_layers: int = 24
    n_heads: int = 20
    n_kv_heads: int = 4
    n_experts: int = 16
    top_k: int = 4
    expert_hidden: int = 768
    max_seq_len: int = 4096
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    expert_activation: str = "gelu"
    router: str = "linear"
    block_size: int = 1
    lowrank_rank: int = 8
    recurrent_hidden: int = 256
    xmoe_dim: int = 16
    xmoe_init_temperature: float = 0.07
    lbl_coef: float = 0.01
    lbl_reduction: str = "mean"
    z_loss_coef: float = 0.0
    dispatch: str = "dropless"
    capacity_factor: float = 1.25
    expert_parallel_size: int = 1
    initializer_range: float = 0.02


MODEL_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(ModelFields)}


def check_model_config(values: Mapping[str, Any]) -> None:
    """Raise ValueError with one line naming the first bad key, its value and what is allowed.

    `values` is a complete model config (MODEL_DEFAULTS merged with the given keys).
    """
    unknown = sorted(set(values) - set(MODEL_DEFAULTS))
    if unknown:
        raise ValueError(f"PathMoEConfig: unknown key(s) {unknown}; allowed: {', '.join(MODEL_DEFAULTS)}")
    v = values

    def bad(key: str, allowed: str) -> ValueError:
        return ValueError(f"PathMoEConfig: {key}={v[key]!r} is invalid; allowed: {allowed}")

    for key in _POSITIVE_INTS:
        if isinstance(v[key], bool) or not isinstance(v[key], int) or v[key] < 1:
            raise bad(key, "a positive integer")
    for key in ("rope_theta", "norm_eps", "initializer_range", "capacity_factor", "xmoe_init_temperature"):
        if not isinstance(v[key], (int, float)) or v[key] <= 0:
            raise bad(key, "a positive number")
    for key in ("lbl_coef", "z_loss_coef"):
        if not isinstance(v[key], (int, float)) or v[key] < 0:
            raise bad(key, "a number >= 0")
    if v["router"] not in ROUTERS:
        raise bad("router", " | ".join(ROUTERS))
    if v["dispatch"] not in DISPATCHES:
        raise bad("dispatch", " | ".join(DISPATCHES))
    if v["lbl_reduction"] not in LBL_REDUCTIONS:
        raise bad("lbl_reduction", " | ".join(LBL_REDUCTIONS))
    if v["expert_activation"] not in ACTIVATIONS:
        raise bad("expert_activation", " | ".join(ACTIVATIONS))
    if v["top_k"] > v["n_experts"]:
        raise bad("top_k", f"1..n_experts={v['n_experts']}")
    if v["d_model"] % v["n_heads"]:
        raise bad("n_heads", f"a divisor of d_model={v['d_model']}")
    if (v["d_model"] // v["n_heads"]) % 2:
        raise bad("n_heads", f"a divisor of d_model={v['d_model']} giving an even head dim (RoPE)")
    if v["n_heads"] % v["n_kv_heads"]:
        raise bad("n_kv_heads", f"a divisor of n_heads={v['n_heads']}")
    block = v["block_size"]
    if isinstance(block, bool) or not isinstance(block, int) or not 1 <= block <= v["n_layers"]:
        raise bad("block_size", f"an integer in 1..n_layers={v['n_layers']}")
    if v["router"] not in BLOCK_ROUTERS and block != 1:
        raise bad("block_size", f"1 for router={v['router']!r} (blocks apply to {', '.join(BLOCK_ROUTERS)})")
    if v["n_experts"] % v["expert_parallel_size"]:
        raise bad("expert_parallel_size", f"a divisor of n_experts={v['n_experts']}")
