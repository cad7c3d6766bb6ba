"""`PathMoEForCausalLM`: the decoder-only MoE language model and its Hugging Face integration.

The forward loop owns routing: a single `RouterStack` computes each layer's logits (threading the
recurrent state), `choose` turns them into top-k decisions (honouring a `RoutingHook`), mono layers
reuse their block's decision, and the auxiliary losses come from deciding layers only (the
load-balancing loss reduced over them by `lbl_reduction`).

Generation runs through transformers' `GenerationMixin` with its cache classes (a `DynamicCache` by
default): the forward takes the cache (`cache`, or `past_key_values` as older transformers call it),
attends over the cached K/V and returns it, so each decoding step computes only the new tokens.
Routing is per token, so cached and uncached decoding choose the same experts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import Cache, DynamicCache, GenerationConfig, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .config import PathMoEConfig
from .hooks import RoutingHook
from .layers import DecoderLayer, MoEFeedForward, RMSNorm, rope_tables
from .moe import Experts
from .routers import LinearRouter, LowRankRouter, RouterStack, XMoERouter
from .routing import balance_stats, choose, reduce_load_balancing, z_loss


@dataclass
class PathMoEOutput(ModelOutput):
    """logits [B, T, V]; loss = lm_loss + aux_loss (None without labels); routing per layer (see docs)."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    lm_loss: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = None
    routing: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None
    cache: Cache | None = None  # the KV cache after this forward (None without use_cache or a given cache)


class PathMoEGenerationConfig(GenerationConfig):
    """Generation defaults that ignore the model config: its `top_k` counts experts, not sampling candidates."""

    @classmethod
    def from_model_config(cls, model_config):  # type: ignore[override]
        return cls()  # plain defaults: nothing of the model config (e.g. `top_k`) leaks into decoding


class PathMoEForCausalLM(PreTrainedModel, GenerationMixin):
    """Decoder-only Transformer (RMSNorm, RoPE, GQA) with an MoE feed-forward in every layer."""

    config_class = PathMoEConfig
    base_model_prefix = "pathmoe"
    _no_split_modules = ["DecoderLayer"]
    _supports_sdpa = True
    main_input_name = "input_ids"
    generation_config_class = PathMoEGenerationConfig

    def __init__(self, config: PathMoEConfig) -> None:
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.layers = nn.ModuleList(DecoderLayer(config, l) for l in range(config.n_layers))
        self.router_stack = RouterStack(config)
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.activation_checkpointing = False
        self._attention_block, self._ffn = DecoderLayer.attention_block, MoEFeedForward.forward
        self.post_init()

    # ---- Hugging Face plumbing -------------------------------------------------------------
    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Embedding)):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, RMSNorm):
            init.ones_(module.weight)
        elif isinstance(module, Experts) and module.total > module.n_experts:
            # an expert-parallel shard: the slice of the full [E, ...] draw, so the model starts from the
            # same weights on any number of ranks (and each rank's experts differ)
            lo, hi = module.first, module.first + module.n_experts
            with torch.no_grad():
                for p in (module.w_up, module.w_down):
                    p.copy_(p.new_empty((module.total, *p.shape[1:])).normal_(0.0, std)[lo:hi])
        elif isinstance(module, Experts):
            init.normal_(module.w_up, mean=0.0, std=std)
            init.normal_(module.w_down, mean=0.0, std=std)
        elif isinstance(module, XMoERouter):
            init.normal_(module.expert_emb, mean=0.0, std=std)
            init.constant_(module.log_temperature, math.log(self.config.xmoe_init_temperature))
        elif isinstance(module, LowRankRouter):
            init.normal_(module.base, mean=0.0, std=std)
            init.zeros_(module.a)  # every layer starts at the shared base router
            init.normal_(module.b, mean=0.0, std=std)
        elif isinstance(module, nn.GRUCell):
            bound = module.hidden_size**-0.5
            for p in module.parameters():
                init.uniform_(p, -bound, bound)
        elif isinstance(module, LinearRouter):  # incl. the frozen random routers
            init.normal_(module.weight, mean=0.0, std=std)

    def save_pretrained(self, save_directory, *args, state_dict=None, **kwargs):  # type: ignore[override]
        """`PreTrainedModel.save_pretrained`, always in the dropless layout: a deepspeed-dispatch model
        writes every layer's experts as one [E, ...] tensor (`dropless_state_dict`, a collective under
        expert parallelism, unless `state_dict` is given) and a config saying `dispatch: dropless`,
        so any process loads it without DeepSpeed or a process group."""
        if self.config.dispatch == "dropless":
            return super().save_pretrained(save_directory, *args, state_dict=state_dict, **kwargs)
        import copy

        from .deepspeed_moe import dropless_state_dict

        if state_dict is None:
            state_dict = dropless_state_dict(self)
        out = super().save_pretrained(save_directory, *args, state_dict=state_dict, **kwargs)
        config = copy.deepcopy(self.config)
        config.dispatch, config.expert_parallel_size = "dropless", 1
        config.save_pretrained(save_directory)
        return out

    def set_activation_checkpointing(self, enabled: bool) -> None:
        """Recompute attention and expert activations in backward (trades compute for memory)."""
        self.activation_checkpointing = enabled

    def compile_layers(self, **options) -> None:
        """torch.compile the per-layer compute (attention block, MoE feed-forward) once for all layers.

        Regional compilation in the torchtitan style: every layer runs the same two compiled
        functions with its own parameters as inputs, so the compile cost is that of one layer, not
        of the unrolled stack, and routing (hooks, shared decisions) stays eager Python. Weights and
        state_dict keys are untouched, so checkpoints and exports are the same as without compile.
        """
        self._attention_block = torch.compile(DecoderLayer.attention_block, **options)
        self._ffn = torch.compile(MoEFeedForward.forward, **options)

    # ---- counts ----------------------------------------------------------------------------
    def parameter_counts(self) -> dict[str, int]:
        """Total and per-token active parameters (unique tensors: a shared router counts once).

        Active = embeddings + attention + norms + all router parameters + top_k of the n_experts
        experts in each layer + lm head. Counted from config for the experts so it is the global
        number even when expert parallelism holds only local experts.
        """
        cfg = self.config
        per_expert = sum(p[0].numel() for p in self.layers[0].ffn.experts.parameters())
        expert_ids = {id(p) for layer in self.layers for p in layer.ffn.experts.parameters()}
        dense = sum(p.numel() for p in self.parameters() if id(p) not in expert_ids)
        return {"total": dense + cfg.n_layers * cfg.n_experts * per_expert,
                "active": dense + cfg.n_layers * cfg.top_k * per_expert}

    # ---- forward ---------------------------------------------------------------------------
    def _mask(self, attention_mask: torch.Tensor | None, t: int, past: int = 0) -> torch.Tensor | None:
        """Bool [B, 1, T, past+T] mask of which keys each of the T new tokens sees (`past` tokens cached).

        None (the fastest SDPA path: causal, or every key for one new token) unless some key is
        padding or a multi-token chunk follows a cache.
        """
        no_pad = attention_mask is None or bool(attention_mask.all())
        if no_pad and (past == 0 or t == 1):
            return None
        s = past + t
        device = attention_mask.device if attention_mask is not None else self.embed.weight.device
        query_pos = torch.arange(past, s, device=device)[:, None]  # [T, 1]
        key_pos = torch.arange(s, device=device)[None, :]  # [1, S]
        mask = (key_pos <= query_pos)[None, None]  # [1, 1, T, S]
        if not no_pad:
            mask = mask & attention_mask[:, None, None, -s:].bool()
        return mask | (key_pos == query_pos)  # pad rows attend to themselves: no NaN

    def _ckpt(self, fn, *args):
        if self.activation_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_routing: bool = False,
        routing_hook: RoutingHook | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        use_cache: bool = False,
        past_key_values: Cache | None = None,
        **kwargs,
    ) -> PathMoEOutput:
        """input_ids [B, T]; attention_mask [B, past+T] (1 = real token); `cache` holds K/V of the
        `past` earlier tokens and gets these T appended; use_cache=True without one starts a DynamicCache."""
        cfg = self.config
        b, t = input_ids.shape
        cache = cache if cache is not None else past_key_values
        if use_cache and cache is None:
            cache = DynamicCache(config=cfg)
        past = cache.get_seq_length() if cache is not None else 0
        x = self.embed(input_ids)  # [B, T, d]
        cos, sin = rope_tables(t, cfg.head_dim, cfg.rope_theta, x.device, start=past)
        mask = self._mask(attention_mask, t, past)
        if routing_hook is not None:
            routing_hook.begin(b * t)
        aux = x.new_zeros((), dtype=torch.float32)
        balance = []  # per deciding layer: (f [E], P [E]) for the load-balancing loss
        state, decision, routing = None, None, []
        for l, layer in enumerate(self.layers):
            x = self._ckpt(self._attention_block, layer, x, cos, sin, mask, cache)
            h = layer.ffn_norm(x).reshape(b * t, -1)  # [N, d]
            if self.router_stack.decides(l):
                logits, state = self.router_stack.logits(l, h, state)  # [N, E] fp32
                probs = logits.softmax(-1)
                ids, weights = choose(l, probs, cfg.top_k, routing_hook)
                if cfg.lbl_coef:
                    balance.append(balance_stats(probs, ids))
                if cfg.z_loss_coef:
                    aux = aux + cfg.z_loss_coef * z_loss(logits)
                decision = (ids, weights, probs)
            ids, weights, probs = decision
            x = x + self._ckpt(self._ffn, layer.ffn, h, ids, weights).view(b, t, -1)
            if output_routing:
                routing.append(decision)
        if balance:
            aux = aux + cfg.lbl_coef * reduce_load_balancing(balance, cfg.lbl_reduction, cfg.top_k)
        logits = self.lm_head(self.norm(x))  # [B, T, V]
        lm_loss = loss = None
        if labels is not None:
            lm_loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                                      labels[:, 1:].reshape(-1), ignore_index=-100)
            loss = lm_loss + aux
        return PathMoEOutput(loss=loss, logits=logits, lm_loss=lm_loss, aux_loss=aux,
                             routing=routing if output_routing else None, cache=cache)
