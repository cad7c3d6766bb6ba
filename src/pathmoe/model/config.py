"""`PathMoEConfig`: every size and routing choice of the model, validated at construction.

Validation (pathmoe.model_rules, shared with the experiment loader) runs at construction, so a bad
config fails before any tensor is allocated, with one line naming the key, the value and what is allowed.
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

from pathmoe.model_rules import ACTIVATIONS, DISPATCHES, ROUTERS  # noqa: F401  (re-exported by pathmoe.model)
from pathmoe.model_rules import MODEL_DEFAULTS, ModelFields, check_model_config


class PathMoEConfig(ModelFields, PretrainedConfig):
    """Configuration of a decoder-only MoE Transformer with a selectable routing strategy.

    Defaults are the paper's 0.9B model (Table 5). `block_size` is the number of consecutive layers
    that share router parameters (linear, xmoe) or routing decisions (mono); the last block may be
    shorter. `expert_parallel_size` is only used by the deepspeed dispatch. The model fields are
    declared in `pathmoe.model_rules.ModelFields` (torch-free, shared with the config loader).
    """

    model_type = "pathmoe"
    # Names the generic HF machinery (generation, lm-eval, DeepSpeed auto config) looks for.
    attribute_map = {"hidden_size": "d_model", "num_hidden_layers": "n_layers",
                     "num_attention_heads": "n_heads", "num_key_value_heads": "n_kv_heads",
                     "max_position_embeddings": "max_seq_len"}

    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs: Any) -> None:
        # transformers 5 configs are dataclasses: declared fields (top_k included) are model keys,
        # not generation flags; validation runs here and again at save time.
        super().__post_init__(**kwargs)
        self.validate()

    def validate(self) -> None:
        """Raise ValueError with one line naming the first bad key, its value and what is allowed."""
        check_model_config({key: getattr(self, key) for key in MODEL_DEFAULTS})
        super().validate()  # transformers' own checks (token ids, output flags, ...)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def n_blocks(self) -> int:
        """Number of sharing blocks (the last may be shorter than block_size)."""
        return -(-self.n_layers // self.block_size)
