"""Dispatch backends against the naive per-token definition of an MoE layer (outputs and gradients)."""

from __future__ import annotations


import pytest
import torch

import pathmoe.model.moe as moe
from pathmoe.model import Experts, PathMoEConfig, PathMoEForCausalLM, choose, dropless_moe, per_expert_loop_moe, per_token_reference

torch.set_num_threads(1)


def _setup(activation: str = "gelu", n: int = 40, k: int = 3):
    torch.manual_seed(0)
    experts = Experts(8, 32, 16, activation)
    for p in experts.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(n, 32, requires_grad=True)
    logits = torch.randn(n, 8, requires_grad=True)
    return experts, x, logits, k


def _run(fn, experts, x, logits, k):
    """Output and grads w.r.t. input, router logits and both expert tensors."""
    ids, w = choose(0, logits.softmax(-1), k)
    y = fn(x, ids, w)
    (y * torch.linspace(-1, 1, y.shape[-1])).sum().backward()
    res = [y.detach().clone(), x.grad.clone(), logits.grad.clone(), experts.w_up.grad.clone(), experts.w_down.grad.clone()]
    x.grad = logits.grad = None
    experts.zero_grad(set_to_none=True)
    return res


def _assert_close(a, b):
    for p, q in zip(a, b):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-5 * q.abs().max().item())


@pytest.mark.parametrize("activation", ["gelu", "swiglu"])
def test_dropless_equals_per_token_reference(activation):
    experts, x, logits, k = _setup(activation)
    ref = _run(lambda a, i, w: per_token_reference(a, i, w, experts), experts, x, logits, k)
    _assert_close(_run(lambda a, i, w: dropless_moe(a, i, w, experts), experts, x, logits, k), ref)
    _assert_close(_run(lambda a, i, w: per_expert_loop_moe(a, i, w, experts), experts, x, logits, k), ref)


def test_grouped_gemm_is_the_public_op_where_torch_has_it():
    """The CUDA path calls torch.nn.functional.grouped_mm (public) when present, not the private op."""
    public = getattr(torch.nn.functional, "grouped_mm", None)
    expected = public if public is not None else getattr(torch, "_grouped_mm", None)
    assert moe._GROUPED_MM is expected
    if torch.__version__.startswith("2.13"):  # this environment's pin has the public op
        assert moe._GROUPED_MM is public is not None


def test_grouped_mm_path_equals_reference(monkeypatch):
    if moe._GROUPED_MM is None:
        pytest.skip("no grouped GEMM in this torch")
    experts, x, logits, k = _setup()
    ref = _run(lambda a, i, w: per_token_reference(a, i, w, experts), experts, x, logits, k)
    monkeypatch.setattr(moe, "_grouped_ok", lambda x, experts: True)  # the CUDA code path, run on CPU fp32
    _assert_close(_run(lambda a, i, w: dropless_moe(a, i, w, experts), experts, x, logits, k), ref)


def test_dropless_handles_unused_experts():
    experts, x, logits, k = _setup()
    ids = torch.zeros(40, 1, dtype=torch.long)
    w = torch.ones(40, 1)
    assert torch.allclose(dropless_moe(x, ids, w, experts), experts.expert(0, x), atol=1e-5)


@pytest.fixture(scope="module")
def dist():
    """A 1-process gloo group, as DeepSpeed's MoE layer needs (first run JIT-compiles a comm op)."""
    deepspeed = pytest.importorskip("deepspeed")
    from pathmoe.train.distenv import init_distributed

    init_distributed("gloo")
    return deepspeed


def _ffn(dispatch: str, capacity_factor: float):
    from pathmoe.model.layers import MoEFeedForward

    cfg = PathMoEConfig(d_model=32, n_heads=4, n_kv_heads=2, n_experts=8, top_k=3, expert_hidden=16, n_layers=1,
                        vocab_size=64, dispatch=dispatch, capacity_factor=capacity_factor)
    ffn = MoEFeedForward(cfg)
    return ffn


def test_deepspeed_dispatch_equals_reference_without_drops(dist):
    experts, x, logits, k = _setup()
    ffn = _ffn("deepspeed", capacity_factor=100.0)
    ffn.experts.load_state_dict(experts.state_dict())
    ref = _run(lambda a, i, w: per_token_reference(a, i, w, ffn.experts), ffn.experts, x, logits, k)
    _assert_close(_run(ffn, ffn.experts, x, logits, k), ref)


def test_deepspeed_dispatch_drops_beyond_capacity(dist):
    experts, x, _, _ = _setup()
    ffn = _ffn("deepspeed", capacity_factor=1.0)
    ffn.experts.load_state_dict(experts.state_dict())
    ids = torch.zeros(40, 1, dtype=torch.long)  # all 40 tokens to expert 0; capacity = ceil(40/8) = 5
    y = ffn(x, ids, torch.ones(40, 1))
    assert torch.allclose(y[:5], experts.expert(0, x[:5]), atol=1e-5)  # first come, first served
    assert torch.count_nonzero(y[5:]) == 0


def test_deepspeed_expert_params_are_marked_for_moe_param_groups(dist):
    from deepspeed.moe.layer import MoE
    from deepspeed.moe.utils import split_params_into_different_moe_groups_for_optimizer

    ffn = _ffn("deepspeed", capacity_factor=1.25)
    assert any(isinstance(m, MoE) for m in ffn.modules())  # the engine detects MoE layers by this type
    groups = split_params_into_different_moe_groups_for_optimizer({"params": list(ffn.parameters()), "name": "all"})
    moe_groups = [g for g in groups if g.get("moe")]
    assert len(moe_groups) == 1 and {id(p) for p in moe_groups[0]["params"]} == {id(p) for p in ffn.experts.parameters()}


def test_deepspeed_state_dict_is_deepspeeds_per_expert_layout_and_restacks(dist):
    """DeepSpeed writes one checkpoint file per expert only for keys `...deepspeed_experts.<j>...`
    inside the MoE module; loading restacks them, and a stacked (dropless) state dict loads as is."""
    from pathmoe.model.deepspeed_moe import dropless_state_dict

    ffn = _ffn("deepspeed", capacity_factor=1.25)
    per_expert = [f"ds.deepspeed_moe.experts.deepspeed_experts.{j}.{n}" for n in ("w_up", "w_down") for j in range(8)]
    assert list(ffn.state_dict()) == per_expert
    assert list(ffn.ds.state_dict()) == [k[len("ds."):] for k in per_expert]  # what the engine saves per expert
    assert torch.equal(ffn.state_dict()["ds.deepspeed_moe.experts.deepspeed_experts.5.w_down"], ffn.experts.w_down[5])
    other = _ffn("deepspeed", capacity_factor=1.25)
    for p in other.parameters():
        torch.nn.init.normal_(p)
    ffn.load_state_dict(other.state_dict())  # per-expert entries -> stacked tensors
    assert torch.equal(ffn.experts.w_up, other.experts.w_up) and torch.equal(ffn.experts.w_down, other.experts.w_down)
    dropless = _ffn("dropless", capacity_factor=1.25)
    for p in dropless.parameters():
        torch.nn.init.normal_(p)
    ffn.load_state_dict(dropless.state_dict())  # the dropless layout loads unchanged
    assert torch.equal(ffn.experts.w_up, dropless.experts.w_up)
    exported = dropless_state_dict(ffn)  # EP=1: every expert is local
    assert list(exported) == ["experts.w_up", "experts.w_down"] and torch.equal(exported["experts.w_up"], dropless.experts.w_up)


def test_model_logits_identical_across_dispatch_backends(dist):
    kw = dict(vocab_size=64, d_model=32, n_layers=3, n_heads=4, n_kv_heads=2, n_experts=8, top_k=2, expert_hidden=16,
              router="linear", block_size=3, capacity_factor=100.0)
    torch.manual_seed(0)
    dropless = PathMoEForCausalLM(PathMoEConfig(**kw)).eval()
    ds = PathMoEForCausalLM(PathMoEConfig(**kw, dispatch="deepspeed")).eval()
    ds.load_state_dict(dropless.state_dict())
    tokens = torch.randint(0, 64, (2, 10))
    assert torch.allclose(dropless(tokens).logits, ds(tokens).logits, atol=1e-5)


def test_grouped_path_only_for_aligned_expert_sizes():
    """Sizes the grouped kernel rejects (row strides not a multiple of 16 bytes) take the slice loop."""
    assert moe._grouped_aligned(Experts(4, 16, 24, "gelu"))
    assert moe._grouped_aligned(Experts(4, 16, 8, "swiglu"))
    assert not moe._grouped_aligned(Experts(4, 12, 24, "gelu"))  # d_model 12
    assert not moe._grouped_aligned(Experts(4, 16, 20, "gelu"))  # expert hidden 20
    assert not moe._grouped_aligned(Experts(4, 16, 4, "swiglu"))  # gate/value halves of 4
