"""Traces from Hugging Face MoE models (tiny random Mixtral / Qwen2-MoE / OLMoE; nothing downloaded)."""

import numpy as np
import pytest
import torch
from transformers import (MixtralConfig, MixtralForCausalLM, OlmoeConfig, OlmoeForCausalLM, Qwen2MoeConfig,
                          Qwen2MoeForCausalLM)

from pathmoe.analysis.hf import collect_hf_traces
from pathmoe.analysis.paths import path_metrics

torch.set_num_threads(1)
COMMON = dict(vocab_size=100, hidden_size=32, intermediate_size=32, num_hidden_layers=3, num_attention_heads=4,
              num_key_value_heads=2, eos_token_id=0, bos_token_id=0, pad_token_id=0)
MODELS = {
    "mixtral": (MixtralConfig, MixtralForCausalLM, dict(num_local_experts=8, num_experts_per_tok=2)),
    "qwen2_moe": (Qwen2MoeConfig, Qwen2MoeForCausalLM, dict(num_experts=6, num_experts_per_tok=2,
                  moe_intermediate_size=16, shared_expert_intermediate_size=16, norm_topk_prob=False)),
    "olmoe": (OlmoeConfig, OlmoeForCausalLM, dict(num_experts=8, num_experts_per_tok=2)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_hf_traces_reproduce_the_routers_own_choice(name):
    config_cls, model_cls, extra = MODELS[name]
    torch.manual_seed(0)
    model = model_cls(config_cls(**COMMON, **extra)).eval()
    captured = []  # each router returns (logits, top-k scores, top-k indices)
    routers = [m for m in model.modules() if type(m).__name__.endswith("TopKRouter")]
    handles = [r.register_forward_hook(lambda mod, inp, out: captured.append(out)) for r in routers]
    tokens = np.random.default_rng(0).integers(0, 100, 64)
    traces = collect_hf_traces(model, tokens, seq_len=32, batch_size=2)
    for h in handles:
        h.remove()
    assert traces["experts"].shape == (64, 3, 2)
    for layer, (_, scores, indices) in enumerate(captured):
        # same expert set per token; ours is sorted by weight like native traces
        assert np.array_equal(np.sort(traces["experts"][:, layer], 1), np.sort(indices.numpy(), 1))
        if name != "mixtral":  # un-normalised top-k probabilities, as the model uses them
            np.testing.assert_allclose(np.sort(traces["weights"][:, layer], 1),
                                       np.sort(scores.float().numpy(), 1), rtol=1e-5)
    if name == "mixtral":
        np.testing.assert_allclose(traces["weights"].sum(-1), 1.0, rtol=1e-5)
    m = path_metrics(traces["experts"][:, :, 0])
    assert m["num_layers"] == 3 and 1 <= m["unique_paths"] <= 64
