"""Routing traces of Hugging Face MoE models (Mixtral, Qwen2-MoE, OLMoE, ...) from their router logits.

transformers 5.x returns `out.router_logits` when called with `output_router_logits=True`: a tuple
with one [batch*seq, num_experts] tensor per MoE layer (dense layers, e.g. Qwen2-MoE's
`mlp_only_layers`, contribute none). We redo the routers' own choice: fp32 softmax, top-k, and
renormalisation of the k weights when the model renormalises (`norm_topk_prob`, always for
Mixtral), so the resulting traces have exactly the layout of native pathmoe traces and every
analysis applies unchanged.
"""

from __future__ import annotations

import numpy as np
import torch

from .traces import assemble, batches, entropy_bits


def hf_top_k(model) -> int:
    """The model's experts-per-token (config.num_experts_per_tok)."""
    k = getattr(model.config, "num_experts_per_tok", None)
    if not k:
        raise ValueError(f"{type(model).__name__}: config has no num_experts_per_tok; pass top_k explicitly")
    return int(k)


@torch.no_grad()
def collect_hf_traces(model, tokens: np.ndarray, top_k: int | None = None, seq_len: int = 512,
                      batch_size: int = 4, device: str | torch.device = "cpu") -> dict[str, np.ndarray]:
    """Traces dict (same layout as `collect_traces`) of an HF MoE causal LM over windows of `tokens`."""
    top_k = hf_top_k(model) if top_k is None else int(top_k)
    renormalise = bool(getattr(model.config, "norm_topk_prob", True))
    device = torch.device(device)
    was_training = model.training
    model.eval()
    pieces: dict[str, list[np.ndarray]] = {"tokens": [], "experts": [], "weights": [], "entropy": []}
    num_experts = 0
    try:
        for x in batches(tokens, seq_len, batch_size, "HF routing traces"):
            out = model(input_ids=x.to(device), output_router_logits=True)
            logits = getattr(out, "router_logits", None)
            if not logits:
                raise ValueError(f"{type(model).__name__} returned no router_logits; is it an MoE model?")
            probs = torch.stack([lg.reshape(x.numel(), -1).float().softmax(-1) for lg in logits], 1)  # [N, L, E]
            num_experts = probs.shape[-1]
            if not 1 <= top_k <= num_experts:
                raise ValueError(f"top_k must lie in [1, {num_experts}], got {top_k}")
            weights, ids = probs.topk(top_k, dim=-1)  # sorted, descending
            if renormalise:
                weights = weights / weights.sum(-1, keepdim=True)
            pieces["tokens"].append(x.reshape(-1).numpy())
            pieces["experts"].append(ids.cpu().numpy())
            pieces["weights"].append(weights.cpu().numpy())
            pieces["entropy"].append(entropy_bits(probs).cpu().numpy())
    finally:
        model.train(was_training)
    return assemble(pieces["tokens"], pieces["experts"], pieces["weights"], pieces["entropy"], num_experts)
