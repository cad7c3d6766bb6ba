"""Experts and the dropless dispatch: every token-slot is computed, none is dropped.

Token-slots are sorted by expert so each expert sees one contiguous slice; the experts then run as
grouped matrix products (on CUDA with bf16: one kernel for all experts, no host-device sync;
the public `torch.nn.functional.grouped_mm` where this torch has it, else `torch._grouped_mm`) or otherwise as one matmul per contiguous slice inside a memory-lean autograd
function. Two slow references (per token and per expert) exist for tests and the benchmark.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

# the public grouped GEMM (torch >= 2.10), else the private op older torch ships; None without either.
# CPU keeps the sliced loop below: on the paper-size layer it is faster and leaner than grouped_mm there.
_GROUPED_MM = getattr(F, "grouped_mm", None) or getattr(torch, "_grouped_mm", None)


class Experts(nn.Module):
    """E two-matrix MLPs stored as stacked tensors: up [E, d, H], down [E, h, d].

    H = h for GELU and 2h for SwiGLU (gate and value halves). Stacking keeps one tensor per matrix,
    which grouped matmuls and DeepSpeed's batched expert buffers both consume directly.
    """

    def __init__(self, n_experts: int, d_model: int, hidden: int, activation: str) -> None:
        super().__init__()
        self.activation = activation
        up = 2 * hidden if activation == "swiglu" else hidden
        self.w_up = nn.Parameter(torch.empty(n_experts, d_model, up))  # [E, d, H]
        self.w_down = nn.Parameter(torch.empty(n_experts, hidden, d_model))  # [E, h, d]
        # Expert parallelism: these are global experts first .. first+n_experts-1 of `total`; the
        # initial weights are those slices of the full tensors (pathmoe.model.transformer).
        self.first, self.total = 0, n_experts

    @property
    def n_experts(self) -> int:
        return self.w_up.shape[0]

    def act(self, h: torch.Tensor) -> torch.Tensor:
        if self.activation == "swiglu":
            gate, value = h.chunk(2, dim=-1)
            return F.silu(gate) * value
        return F.gelu(h)

    def expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        """Expert e applied to x [n, d] -> [n, d]."""
        return self.act(x @ self.w_up[e]) @ self.w_down[e]

    def batched(self, x: torch.Tensor) -> torch.Tensor:
        """All experts on per-expert buffers x [E, C, d] -> [E, C, d] (DeepSpeed's layout)."""
        return torch.bmm(self.act(torch.bmm(x, self.w_up)), self.w_down)


def _grouped_aligned(experts: "Experts") -> bool:
    """The grouped kernel needs 16-byte row strides: d, H and h multiples of 8 bf16 elements."""
    _, d, up = experts.w_up.shape
    return all(n % 8 == 0 for n in (d, up, experts.w_down.shape[1]))


def _grouped_ok(x: torch.Tensor, experts: "Experts") -> bool:
    """Grouped GEMM where it is the fast path: CUDA with bf16 activations and aligned expert sizes."""
    return _GROUPED_MM is not None and x.is_cuda and x.dtype == torch.bfloat16 and _grouped_aligned(experts)


def _act_backward(grad: torch.Tensor, h: torch.Tensor, experts: "Experts") -> torch.Tensor:
    """d act(h) / dh applied to grad, without building an autograd graph when the kernel exists."""
    if experts.activation == "gelu":
        return torch.ops.aten.gelu_backward(grad, h)
    with torch.enable_grad():
        leaf = h.detach().requires_grad_(True)
        return torch.autograd.grad(experts.act(leaf), leaf, grad)[0]


class _SortedExperts(torch.autograd.Function):
    """Experts over expert-sorted token-slots, one contiguous slice per expert, memory-lean.

    Forward keeps only the pre-activation h [N*k, H] (plus indices); the gathered inputs, the
    activations and the expert outputs are per-expert transients, recomputed in backward. Peak
    memory is therefore O(N*k*H) instead of several O(N*k*d) buffers, and no capacity padding.
    """

    @staticmethod
    def forward(ctx, x, w_up, w_down, ws, token, spans, experts):  # type: ignore[override]
        # x [N, d]; ws [N*k] fp32 slot weights and token [N*k] source rows, both in expert order
        h = x.new_empty(token.shape[0], w_up.shape[-1])  # [N*k, H]
        out = torch.zeros(x.shape, device=x.device, dtype=torch.float32)
        for e, a, b in spans:
            tok = token[a:b]
            torch.mm(x.index_select(0, tok), w_up[e], out=h[a:b])  # rows a:b are contiguous: no copy
            act = experts.act(h[a:b]).mul_(ws[a:b, None].to(x.dtype))
            out.index_put_((tok,), (act @ w_down[e]).float(), accumulate=True)  # faster than index_add_ on CPU
        ctx.save_for_backward(x, w_up, w_down, ws, token, h)
        ctx.spans, ctx.experts = spans, experts
        return out.to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        x, w_up, w_down, ws, token, h = ctx.saved_tensors
        gx = torch.zeros(x.shape, device=x.device, dtype=torch.float32)
        gwu, gwd, gws = torch.zeros_like(w_up), torch.zeros_like(w_down), torch.zeros_like(ws)
        grad_out = grad_out.contiguous()
        for e, a, b in ctx.spans:
            tok, w = token[a:b], ws[a:b, None].to(x.dtype)
            g = grad_out.index_select(0, tok)  # [n, d]
            act = ctx.experts.act(h[a:b])  # recomputed [n, hidden]
            g_act_w = g @ w_down[e].T  # gradient w.r.t. act * w
            gws[a:b] = torch.linalg.vecdot(g_act_w, act).float()
            torch.mm(act.mul_(w).T, g, out=gwd[e])
            gh = _act_backward(g_act_w.mul_(w), h[a:b], ctx.experts)
            torch.mm(x.index_select(0, tok).T, gh, out=gwu[e])
            gx.index_put_((tok,), (gh @ w_up[e].T).float(), accumulate=True)
        return gx.to(x.dtype), gwu, gwd, gws, None, None, None


def dropless_moe(x: torch.Tensor, expert_ids: torch.Tensor, weights: torch.Tensor, experts: Experts) -> torch.Tensor:
    """sum_j weights[n, j] * expert_{ids[n, j]}(x[n]) for x [N, d], ids/weights [N, k] -> [N, d]."""
    n_tokens, k = expert_ids.shape
    flat = expert_ids.reshape(-1)  # [N*k]
    order = flat.argsort(stable=True)  # token-slots grouped by expert
    token = order // k  # source token of each sorted slot
    ws = weights.reshape(-1).float().index_select(0, order)  # [N*k] fp32
    counts = flat.new_zeros(experts.n_experts).scatter_add_(0, flat, torch.ones_like(flat))  # [E]; static
    # shape, unlike bincount, whose CUDA kernel reads max(ids) back to the host to size its output
    if _grouped_ok(x, experts):
        offs = counts.cumsum(0).to(torch.int32)  # stays on device: no host-device sync
        xs = x.index_select(0, token)  # [N*k, d]
        h = _GROUPED_MM(xs, experts.w_up.to(x.dtype), offs=offs)
        ys = _GROUPED_MM(experts.act(h) * ws[:, None].to(x.dtype), experts.w_down.to(x.dtype), offs=offs)
        out = torch.zeros(n_tokens, x.shape[-1], device=x.device, dtype=torch.float32)
        return out.index_add_(0, token, ys.float()).to(x.dtype)
    return _sliced_experts(x, ws, token, counts, experts)


@torch.compiler.disable
def _sliced_experts(x: torch.Tensor, ws: torch.Tensor, token: torch.Tensor, counts: torch.Tensor,
                    experts: Experts) -> torch.Tensor:
    """The per-expert slice loop. Its bounds live on the host (one sync), so torch.compile must not
    trace it: it would specialise on the counts and recompile every step. It runs eagerly in place."""
    sizes = counts.tolist()  # the one host read
    spans = [(e, end - n, end) for e, (n, end) in enumerate(zip(sizes, itertools.accumulate(sizes))) if n]
    return _SortedExperts.apply(x, experts.w_up, experts.w_down, ws, token, spans, experts)


def per_token_reference(x: torch.Tensor, expert_ids: torch.Tensor, weights: torch.Tensor, experts: Experts) -> torch.Tensor:
    """Naive definition, one token-slot at a time (tests only)."""
    rows = []
    for n in range(x.shape[0]):
        acc = torch.zeros(x.shape[-1], dtype=torch.float32, device=x.device)
        for j in range(expert_ids.shape[1]):
            acc = acc + weights[n, j] * experts.expert(int(expert_ids[n, j]), x[n : n + 1])[0].float()
        rows.append(acc)
    return torch.stack(rows).to(x.dtype)


def per_expert_loop_moe(x: torch.Tensor, expert_ids: torch.Tensor, weights: torch.Tensor, experts: Experts) -> torch.Tensor:
    """The common naive implementation: for each expert, mask its tokens and run it (benchmark baseline)."""
    out = torch.zeros(x.shape[0], x.shape[-1], device=x.device, dtype=torch.float32)
    ups, downs = experts.w_up.unbind(0), experts.w_down.unbind(0)  # per-expert views, as separate modules would be
    for e in range(experts.n_experts):
        token, slot = torch.where(expert_ids == e)
        if token.numel():
            y = (experts.act(x[token] @ ups[e]) @ downs[e]).float() * weights[token, slot].float().unsqueeze(-1)
            out.index_add_(0, token, y)
    return out.to(x.dtype)
