"""The GPU training path itself (CUDA, bf16, grouped GEMM, DeepSpeed with NCCL): run where a GPU is.

CI has no GPU, so these skip there; `benchmarks/gpu/device_check.sh` runs them on a lent H100 next
to the throughput benchmark. The CPU suite traces the same code path (tests/test_compile.py).
"""

from __future__ import annotations

import copy

import pytest
import torch
from train_fixtures import run_config, tiny_data  # noqa: F401  (tiny_data is a fixture)

import pathmoe.model.moe as moe
from pathmoe.model import Experts, choose, dropless_moe, per_token_reference

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _experts_and_decision(n: int = 512, d: int = 64, hidden: int = 128, n_experts: int = 8, k: int = 2):
    torch.manual_seed(0)
    experts = Experts(n_experts, d, hidden, "gelu")
    for p in experts.parameters():
        torch.nn.init.normal_(p, std=0.2)
    experts = experts.cuda().bfloat16()
    x = torch.randn(n, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    logits = torch.randn(n, n_experts, device="cuda")
    logits[:, -1] = -1e4  # the last expert gets no tokens: an empty group
    ids, w = choose(0, logits.softmax(-1), k)
    return experts, x, ids, w


def test_grouped_gemm_is_the_cuda_bf16_path_and_matches_reference():
    experts, x, ids, w = _experts_and_decision()
    assert moe._grouped_ok(x, experts)
    y = dropless_moe(x, ids, w, experts)
    ref = per_token_reference(x.float(), ids, w, copy.deepcopy(experts).float())  # fp32 reference
    torch.testing.assert_close(y.float(), ref, rtol=2e-2, atol=2e-2 * ref.abs().max().item())  # bf16 rounding


def test_dispatch_makes_no_host_device_sync():
    experts, x, ids, w = _experts_and_decision()
    dropless_moe(x, ids, w, experts).float().sum().backward()  # warm-up: allocator, cuBLAS handles
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any synchronising call inside raises
    try:
        y = dropless_moe(x, ids, w, experts)
        y.float().sum().backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_causal_attention_runs_on_the_flash_kernel():
    """The training attention (no padding mask, bf16, GQA through SDPA's enable_gqa) is served by FlashAttention."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from pathmoe.model import PathMoEConfig
    from pathmoe.model.layers import Attention, rope_tables

    cfg = PathMoEConfig(d_model=1280, n_heads=20, n_kv_heads=4, n_layers=1, n_experts=16, top_k=4)
    attn = Attention(cfg).cuda().bfloat16()
    x = torch.randn(2, 1024, 1280, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    cos, sin = rope_tables(1024, cfg.head_dim, cfg.rope_theta, x.device)
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):  # raises if flash cannot take these inputs
        attn(x, cos, sin, None).float().square().mean().backward()
    assert torch.isfinite(x.grad).all()


def _train_cuda(run_dir, data_dir, compile_: bool) -> dict:
    from pathmoe.train import train

    rc = run_config(run_dir, data_dir, model={"d_model": 64, "expert_hidden": 64, "n_heads": 4, "n_kv_heads": 2},
                    train={"steps": 30, "device": "cuda", "precision": "bf16", "compile": compile_,
                           "ckpt_every": 100, "export_every": 100})
    return train(rc)


@pytest.mark.parametrize("compile_", [False, True])
def test_bf16_deepspeed_training_on_cuda_learns(compile_, tiny_data, tmp_path):  # noqa: F811
    from pathmoe.train.metrics import read_metrics

    summary = _train_cuda(tmp_path / "run", tiny_data, compile_)
    losses = [r["loss"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")]
    assert summary["device"] == "cuda" and summary["precision"] == "bf16"
    assert losses[-1] < losses[0] - 0.5
    assert summary["peak_mem_gib"] > 0


def test_bf16_cuda_evaluation_matches_fp32_cpu(tiny_data, tmp_path):  # noqa: F811
    """The eval stage's bf16 CUDA load scores like the fp32 CPU load of the same export."""
    from pathmoe.eval.checkpoint import load_checkpoint
    from pathmoe.eval.perplexity import validation_perplexity

    _train_cuda(tmp_path / "run", tiny_data, compile_=False)
    export = tmp_path / "run" / "hf" / "step_30"
    ppl = {}
    for device, bf16 in (("cpu", False), ("cuda", True)):
        model, _ = load_checkpoint(export, device=device, bf16=bf16, tokenizer_dir=tiny_data / "tokenizer")
        assert next(model.parameters()).dtype == (torch.bfloat16 if bf16 else torch.float32)
        ppl[device] = validation_perplexity(model, tiny_data / "shards", seq_len=32, n_tokens=2048)
    assert ppl["cuda"] == pytest.approx(ppl["cpu"], rel=0.02)
