"""`PathMoEConfig`: every size and routing choice of the model, validated at construction.

Validation lives here (not in the modules) so a bad experiment config fails before any tensor is
allocated, with one line naming the key, the bad value and what is allowed.
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

ROUTERS = ("linear", "random", "xmoe", "recurrent", "mono", "lowrank")
# Routers whose parameters (linear, xmoe) or decisions (mono) can be shared within blocks of layers.
BLOCK_ROUTERS = ("linear", "xmoe", "mono")
DISPATCHES = ("dropless", "deepspeed")
ACTIVATIONS = ("gelu", "swiglu")
_POSITIVE_INTS = ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "n_experts", "top_k",
                  "expert_hidden", "max_seq_len", "lowrank_rank", "recurrent_hidden", "xmoe_dim",
                  "expert_parallel_size")


class PathMoEConfig(PretrainedConfig):
    """Configuration of a decoder-only MoE Transformer with a selectable routing strategy.

    Defaults are the paper's 0.9B model (Table 5). `block_size` is the number of consecutive layers
    that share router parameters (linear, xmoe) or routing decisions (mono); the last block may be
    shorter. `expert_parallel_size` is only used by the deepspeed dispatch.
    """

    model_type = "pathmoe"
    # Names the generic HF machinery (generation, lm-eval, DeepSpeed auto config) looks for.
    attribute_map = {"hidden_size": "d_model", "num_hidden_layers": "n_layers",
                     "num_attention_heads": "n_heads", "num_key_value_heads": "n_kv_heads",
                     "max_position_embeddings": "max_seq_len"}

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
    z_loss_coef: float = 0.0
    dispatch: str = "dropless"
    capacity_factor: float = 1.25
    expert_parallel_size: int = 1
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs: Any) -> None:
        # transformers 5 configs are dataclasses: declared fields (top_k included) are model keys,
        # not generation flags; validation runs here and again at save time.
        super().__post_init__(**kwargs)
        self.validate()

    def validate(self) -> None:
        """Raise ValueError with one line naming the first bad key, its value and what is allowed."""

        def bad(key: str, allowed: str) -> ValueError:
            return ValueError(f"PathMoEConfig: {key}={getattr(self, key)!r} is invalid; allowed: {allowed}")

        for key in _POSITIVE_INTS:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(key, "a positive integer")
        for key in ("rope_theta", "norm_eps", "initializer_range", "capacity_factor", "xmoe_init_temperature"):
            if not isinstance(getattr(self, key), (int, float)) or getattr(self, key) <= 0:
                raise bad(key, "a positive number")
        for key in ("lbl_coef", "z_loss_coef"):
            if not isinstance(getattr(self, key), (int, float)) or getattr(self, key) < 0:
                raise bad(key, "a number >= 0")
        if self.router not in ROUTERS:
            raise bad("router", " | ".join(ROUTERS))
        if self.dispatch not in DISPATCHES:
            raise bad("dispatch", " | ".join(DISPATCHES))
        if self.expert_activation not in ACTIVATIONS:
            raise bad("expert_activation", " | ".join(ACTIVATIONS))
        if self.top_k > self.n_experts:
            raise bad("top_k", f"1..n_experts={self.n_experts}")
        if self.d_model % self.n_heads:
            raise bad("n_heads", f"a divisor of d_model={self.d_model}")
        if (self.d_model // self.n_heads) % 2:
            raise bad("n_heads", f"a divisor of d_model={self.d_model} giving an even head dim (RoPE)")
        if self.n_heads % self.n_kv_heads:
            raise bad("n_kv_heads", f"a divisor of n_heads={self.n_heads}")
        if isinstance(self.block_size, bool) or not isinstance(self.block_size, int) or not (
            1 <= self.block_size <= self.n_layers
        ):
            raise bad("block_size", f"an integer in 1..n_layers={self.n_layers}")
        if self.router not in BLOCK_ROUTERS and self.block_size != 1:
            raise bad("block_size", f"1 for router={self.router!r} (blocks apply to {', '.join(BLOCK_ROUTERS)})")
        if self.n_experts % self.expert_parallel_size:
            raise bad("expert_parallel_size", f"a divisor of n_experts={self.n_experts}")
        super().validate()  # transformers' own checks (token ids, output flags, ...)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def n_blocks(self) -> int:
        """Number of sharing blocks (the last may be shorter than block_size)."""
        return -(-self.n_layers // self.block_size)
