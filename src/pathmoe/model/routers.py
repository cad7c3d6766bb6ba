"""Every routing strategy of the paper behind one interface, `RouterStack`.

The stack is owned once by the model and layers address it by index. That is what makes block
sharing real: a PathB4 router is ONE module (one weight tensor) that every layer of its block calls,
so its gradient is the sum of the four layers' contributions and a checkpoint stores it once
(no tied-weight bookkeeping in safetensors).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import ROUTERS, PathMoEConfig


class LinearRouter(nn.Module):
    """Learned linear map d -> E without bias (Indep-MoE, PathMoE, the deciding layer of Mono)."""

    def __init__(self, d_model: int, n_experts: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_experts, d_model))  # [E, d]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.float(), self.weight.float())  # [N, E] fp32


class XMoERouter(nn.Module):
    """X-MoE (Chi et al. 2022): cosine similarity in a low-dim space over a learnable temperature.

    Both the projected token and the expert embeddings are L2-normalised, so |logit| <= 1/temperature.
    The temperature is stored as its log so it stays positive under any optimizer step.
    """

    def __init__(self, d_model: int, n_experts: int, dim: int, init_temperature: float) -> None:
        super().__init__()
        self.proj = nn.Linear(d_model, dim, bias=False)
        self.expert_emb = nn.Parameter(torch.empty(n_experts, dim))  # [E, dim]
        # shape [1], not a 0-dim scalar: DeepSpeed's parameter broadcast views params as bytes
        self.log_temperature = nn.Parameter(torch.full((1,), math.log(init_temperature)))

    def temperature(self) -> torch.Tensor:
        return self.log_temperature.float().exp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.normalize(F.linear(x.float(), self.proj.weight.float()), dim=-1)  # [N, dim]
        e = F.normalize(self.expert_emb.float(), dim=-1)  # [E, dim]
        return (z @ e.T) / self.temperature()  # [N, E], bounded by 1/temperature


class RecurrentRouter(nn.Module):
    """Layerwise recurrent router (Qiu et al. 2024): per-layer W1, one shared GRU cell, per-layer W2.

    The GRU state carries routing information from layer to layer (s_0 = 0): s_l = GRU(W1_l x, s_{l-1}),
    logits_l = W2_l s_l.
    """

    def __init__(self, d_model: int, n_experts: int, hidden: int, n_layers: int) -> None:
        super().__init__()
        self.w1 = nn.ModuleList(nn.Linear(d_model, hidden, bias=False) for _ in range(n_layers))
        self.gru = nn.GRUCell(hidden, hidden)
        self.w2 = nn.ModuleList(nn.Linear(hidden, n_experts, bias=False) for _ in range(n_layers))

    def forward(self, layer: int, x: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        inp = self.w1[layer](x)  # [N, h]
        if state is None:
            state = inp.new_zeros(inp.shape)
        state = self.gru(inp, state.to(inp.dtype))  # [N, h]
        return F.linear(state.float(), self.w2[layer].weight.float()), state


class LowRankRouter(nn.Module):
    """W_l = W_base + A_l B_l: one shared base router plus a rank-r term per layer.

    A_l starts at zero (LoRA style) so every layer starts with the base router's decisions and
    learns its own deviation; parameters = E*d + n_layers * r * (E + d).
    """

    def __init__(self, d_model: int, n_experts: int, rank: int, n_layers: int) -> None:
        super().__init__()
        self.base = nn.Parameter(torch.empty(n_experts, d_model))  # [E, d]
        self.a = nn.Parameter(torch.empty(n_layers, n_experts, rank))  # [L, E, r]
        self.b = nn.Parameter(torch.empty(n_layers, rank, d_model))  # [L, r, d]

    def weight(self, layer: int) -> torch.Tensor:
        return self.base + self.a[layer] @ self.b[layer]  # [E, d]

    def forward(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        low = F.linear(F.linear(xf, self.b[layer].float()), self.a[layer].float())  # [N, E]
        return F.linear(xf, self.base.float()) + low


class RouterStack(nn.Module):
    """All routers of a model; `logits(layer, x, state)` gives layer `layer`'s fp32 router logits.

    `decides(layer)` is False only for mono layers that reuse their block's decision. `state` is
    threaded through the layers of one forward (the GRU state of the recurrent router, else None).
    """

    def __init__(self, cfg: PathMoEConfig) -> None:
        super().__init__()
        self.kind = cfg.router
        self.block_size = cfg.block_size
        d, e, n = cfg.d_model, cfg.n_experts, cfg.n_layers
        if self.kind in ("linear", "mono"):
            self.routers = nn.ModuleList(LinearRouter(d, e) for _ in range(cfg.n_blocks))
        elif self.kind == "random":
            self.routers = nn.ModuleList(LinearRouter(d, e) for _ in range(n))
            for p in self.routers.parameters():
                p.requires_grad_(False)
        elif self.kind == "xmoe":
            self.routers = nn.ModuleList(
                XMoERouter(d, e, cfg.xmoe_dim, cfg.xmoe_init_temperature) for _ in range(cfg.n_blocks)
            )
        elif self.kind == "recurrent":
            self.recurrent = RecurrentRouter(d, e, cfg.recurrent_hidden, n)
        elif self.kind == "lowrank":
            self.lowrank = LowRankRouter(d, e, cfg.lowrank_rank, n)
        else:  # unreachable after PathMoEConfig.validate
            raise ValueError(f"router={self.kind!r} is invalid; allowed: {' | '.join(ROUTERS)}")

    def block_of(self, layer: int) -> int:
        return layer // self.block_size

    def decides(self, layer: int) -> bool:
        """True if `layer` makes its own routing decision (all layers except non-first mono layers)."""
        return self.kind != "mono" or layer % self.block_size == 0

    def logits(self, layer: int, x: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Router logits [N, E] fp32 of layer `layer` for tokens x [N, d], and the next state."""
        if self.kind == "recurrent":
            return self.recurrent(layer, x, state)
        if self.kind == "lowrank":
            return self.lowrank(layer, x), None
        if self.kind == "random":
            return self.routers[layer](x), None
        return self.routers[self.block_of(layer)](x), None
