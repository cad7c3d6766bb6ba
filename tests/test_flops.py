"""FLOP accounting against a hand count, and the GPU-hour plan built on it."""

import pytest

from pathmoe.flops import matmul_params_per_token, mfu, run_gpu_hours, train_flops_per_token

# d=4, one layer, 2 query heads of dim 2, 1 KV head, 2 experts (top-1) of hidden 3, vocab 5.
TINY = dict(d_model=4, n_layers=1, n_heads=2, n_kv_heads=1, n_experts=2, top_k=1, expert_hidden=3, vocab_size=5)


def test_matmul_params_hand_count():
    # q 4x4=16, k and v 4x2 each=16, out 4x4=16 -> 48; one expert up 4x3 + down 3x4 = 24;
    # router 4x2 = 8; LM head 4x5 = 20. Total 100.
    assert matmul_params_per_token(TINY) == 100


def test_swiglu_expert_has_three_matrices():
    assert matmul_params_per_token({**TINY, "expert_activation": "swiglu"}) == 100 + 12


def test_train_flops_hand_count():
    # 6 * 100 + attention 12 * L * T * d = 12 * 1 * 10 * 4 = 480
    assert train_flops_per_token(TINY, seq_len=10) == 1080


def test_mfu_and_gpu_hours_are_consistent():
    model = {**TINY}
    train = {"steps": 10, "global_batch_size": 3, "seq_len": 10}
    # 300 tokens * 1080 FLOPs = 324000 FLOPs; at 1080 FLOP/s and MFU 0.5 -> 600 s = 1/6 h
    assert run_gpu_hours(model, train, gpu_flops=1080.0, mfu_assumed=0.5) == pytest.approx(600 / 3600)
    assert mfu(model, 10, tokens_per_s_per_gpu=1.0, peak_flops=2160.0) == pytest.approx(0.5)


def test_paper_scale_flops_per_token_magnitude():
    # 0.9B model, 0.37B active: 6N dominates; N_matmul excludes the input embedding (32000*1280).
    m = dict(d_model=1280, n_layers=24, n_heads=20, n_kv_heads=4, n_experts=16, top_k=4,
             expert_hidden=768, vocab_size=32000)
    n = matmul_params_per_token(m)
    assert 0.30e9 < n < 0.34e9
    assert train_flops_per_token(m, 4096) == pytest.approx(6 * n + 12 * 24 * 4096 * 1280)


def test_unset_model_keys_take_the_model_defaults():
    """A scale may leave keys at their defaults: FLOPs count the defaults (the 0.9B model)."""
    from pathmoe.model_rules import MODEL_DEFAULTS

    assert matmul_params_per_token({}) == matmul_params_per_token(MODEL_DEFAULTS)
    partial = {k: v for k, v in TINY.items() if k != "n_kv_heads"}
    assert train_flops_per_token(partial, 10) == train_flops_per_token({**TINY, "n_kv_heads": 4}, 10)
