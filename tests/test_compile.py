"""torch.compile compatibility of the production (CUDA bf16 grouped-GEMM) path, checked on CPU.

The grouped GEMM (`torch.nn.functional.grouped_mm`) runs on CPU in bf16, so the code path that trains on an H100 can be traced here.
`fullgraph=True` turns every graph break into an error, and the dispatch's traced graph must hold
no data-dependent value: a scalar read-back (`.item()`, `.tolist()`) shows up as a symbolic scalar,
an op whose output size depends on data (like `bincount`, whose CUDA kernel reads max(ids) back to
the host) as a symbolic size. Together they guard "no host-device sync inside the dispatch".
`aot_eager` traces forward and backward without generating kernels (fast); one test trains
through DeepSpeed with the real inductor backend.
"""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters
from train_fixtures import run_config, tiny_data  # noqa: F401  (tiny_data is a fixture)

import pathmoe.model.moe as moe
from pathmoe.model import Experts, PathMoEConfig, PathMoEForCausalLM, dropless_moe
from pathmoe.train import train
from pathmoe.train.metrics import read_metrics

pytestmark = pytest.mark.skipif(moe._GROUPED_MM is None, reason="no grouped GEMM in this torch")


@pytest.fixture
def grouped_path(monkeypatch):
    """Route CPU bf16 tensors through the CUDA code path (grouped GEMM, offsets kept on device)."""
    monkeypatch.setattr(moe, "_grouped_ok", lambda x, experts: True)
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def _grads(params):
    return [p.grad.detach().clone() for p in params]


def test_grouped_dispatch_compiles_fullgraph(grouped_path):
    torch.manual_seed(0)
    experts = Experts(4, 16, 32, "gelu")
    for p in experts.parameters():
        torch.nn.init.normal_(p, std=0.3)
    experts = experts.bfloat16()
    x = torch.randn(64, 16, dtype=torch.bfloat16, requires_grad=True)
    ids, w = torch.randint(0, 4, (64, 2)), torch.rand(64, 2)
    ids[:, 0] = 0  # expert 3 may be unused: empty groups must not change shapes
    params = [x, *experts.parameters()]

    dropless_moe(x, ids, w, experts).float().square().sum().backward()
    eager = _grads(params)
    for p in params:
        p.grad = None
    symbolic = []

    def static_shapes_only(gm, example_inputs):  # records data-dependent values, then runs the graph
        for node in gm.graph.nodes:
            val = node.meta.get("example_value")
            scalar_read = isinstance(val, (torch.SymInt, torch.SymFloat, torch.SymBool))  # .item()/.tolist()
            if scalar_read or isinstance(val, torch.Tensor) and not all(isinstance(n, int) for n in val.shape):
                symbolic.append(node.name)
        return gm.forward

    fn = torch.compile(lambda a, i, ww: dropless_moe(a, i, ww, experts), fullgraph=True, dynamic=False,
                       backend=static_shapes_only)
    y = fn(x, ids, w)
    assert symbolic == []
    y.float().square().sum().backward()
    assert torch.equal(y, dropless_moe(x, ids, w, experts))
    for g, e in zip(_grads(params), eager):
        assert torch.allclose(g.float(), e.float(), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("router,block", [("linear", 1), ("linear", 2), ("random", 1), ("xmoe", 2),
                                          ("recurrent", 1), ("mono", 2), ("lowrank", 1)])
def test_compiled_layers_match_eager_with_one_graph_per_region(router, block, grouped_path):
    """Regional compile: every layer reuses the two compiled regions (no per-layer recompiles)."""
    torch.manual_seed(0)
    cfg = PathMoEConfig(vocab_size=256, d_model=64, n_layers=4, n_heads=4, n_kv_heads=2, n_experts=8, top_k=2,
                        expert_hidden=64, max_seq_len=64, router=router, block_size=block)
    model = PathMoEForCausalLM(cfg).bfloat16()
    ids = torch.randint(0, 256, (2, 32))
    eager = model(input_ids=ids, labels=ids)
    keys = set(model.state_dict())
    model.compile_layers(fullgraph=True, backend="aot_eager")
    for _ in range(2):  # the second step must hit the cache
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
    assert torch.equal(out.loss, eager.loss)
    assert counters["stats"]["unique_graphs"] == 2  # attention block + MoE feed-forward, for all 4 layers
    assert set(model.state_dict()) == keys  # checkpoints are the same with and without compile
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad)


def test_compiled_layers_with_activation_checkpointing_match_eager_gradients(grouped_path):
    """Recomputation re-enters the compiled regions in backward; gradients equal plain eager ones."""
    torch.manual_seed(0)
    cfg = PathMoEConfig(vocab_size=256, d_model=64, n_layers=4, n_heads=4, n_kv_heads=2, n_experts=8, top_k=2,
                        expert_hidden=64, max_seq_len=64, router="linear", block_size=2)
    model = PathMoEForCausalLM(cfg).bfloat16()
    ids = torch.randint(0, 256, (2, 32))
    model(input_ids=ids, labels=ids).loss.backward()
    eager = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    model.compile_layers(fullgraph=True, backend="aot_eager")
    model.set_activation_checkpointing(True)
    model(input_ids=ids, labels=ids).loss.backward()
    for name, grad in eager.items():
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad, rtol=0, atol=0, msg=name)


def test_train_with_compile_matches_eager(tiny_data, tmp_path):  # noqa: F811
    """`train.compile: true` (inductor, CPU fp32) trains to the same losses as eager."""
    losses = {}
    torch._dynamo.reset()
    counters.clear()
    for compile_ in (False, True):
        rc = run_config(tmp_path / f"compile_{compile_}", tiny_data,
                        train={"steps": 6, "compile": compile_, "ckpt_every": 100, "export_every": 100})
        train(rc)
        losses[compile_] = [r["loss"] for r in read_metrics(tmp_path / f"compile_{compile_}" / "metrics.jsonl")]
    assert len(losses[True]) == 6
    # the CPU slice loop is excluded from tracing; traced, it would recompile for every new expert load
    print("unique graphs", counters["stats"]["unique_graphs"])
    assert counters["stats"]["unique_graphs"] <= 4
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)
