"""Per-GPU training memory (pathmoe.memory): the documented formula on hand-computed cases, and the plan."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pathmoe.memory import GIB, activation_bytes, expert_params, per_gpu_memory
from pathmoe.model_rules import MODEL_DEFAULTS

MODEL = {**MODEL_DEFAULTS, "vocab_size": 100, "d_model": 8, "n_layers": 2, "n_heads": 2, "n_kv_heads": 1,
         "n_experts": 4, "top_k": 2, "expert_hidden": 16}
TRAIN = {"zero_stage": 0, "precision": "bf16", "micro_batch_size": 2, "seq_len": 5, "activation_checkpointing": False}


def test_expert_params_count_both_matrices_of_every_expert():
    assert expert_params(MODEL) == 2 * 4 * (8 * 16 + 16 * 8)  # 2048
    assert expert_params({**MODEL, "expert_activation": "swiglu"}) == 2 * 4 * (8 * 32 + 16 * 8)


def test_states_by_zero_stage_and_expert_parallel_size():
    pe, total = 2048, 3048  # 1000 dense parameters
    m = per_gpu_memory(MODEL, TRAIN, ranks=4, total_params=total)
    assert (m.params, m.grads, m.optimizer) == (2 * 3048, 2 * 3048, 12 * 3048)  # bf16, ZeRO 0: all replicated
    m = per_gpu_memory(MODEL, {**TRAIN, "zero_stage": 1}, ranks=4, total_params=total)
    assert (m.grads, m.optimizer) == (2 * 3048, 12 * 3048 / 4)
    m = per_gpu_memory(MODEL, {**TRAIN, "zero_stage": 2, "precision": "fp32"}, ranks=4, total_params=total)
    assert (m.params, m.grads, m.optimizer) == (4 * 3048, 4 * 3048 / 4, 8 * 3048 / 4)
    ep = {**MODEL, "dispatch": "deepspeed", "expert_parallel_size": 2}
    m = per_gpu_memory(ep, {**TRAIN, "zero_stage": 2}, ranks=4, total_params=total)
    local, shard = 1000 + pe / 2, 1000 / 4 + pe / 2 / 2  # experts split over EP=2, ZeRO over the 2 expert-DP ranks
    assert (m.params, m.grads, m.optimizer, m.ep) == (2 * local, 2 * shard, 12 * shard, 2)
    assert per_gpu_memory({**MODEL, "expert_parallel_size": 2}, TRAIN, 4, total).ep == 1  # dropless ignores EP
    with pytest.raises(ValueError, match="expert_parallel_size=2 must divide the 3 training ranks"):
        per_gpu_memory(ep, TRAIN, ranks=3, total_params=total)


def test_activations_follow_the_formula_and_checkpointing_keeps_layer_inputs():
    tokens, a = 10, 2
    layer = tokens * (a * (10 * 8 + 2 * 4 + 2 * 16) + 8 * 4)  # d=8, d_kv=4, k=2, H=16, E=4
    logits = tokens * 100 * (a + 8)
    assert activation_bytes(MODEL, TRAIN) == 2 * layer + logits
    assert activation_bytes(MODEL, {**TRAIN, "activation_checkpointing": True}) == 2 * a * tokens * 8 + layer + logits
    ds = {**MODEL, "dispatch": "deepspeed", "capacity_factor": 1.5}
    assert activation_bytes(ds, TRAIN) == 2 * (layer + tokens * 2 * a * 1.5 * 2 * 8) + logits


def test_plan_shows_the_16b_run_fits_an_80gb_gpu():
    res = subprocess.run([sys.executable, "-m", "pathmoe.cli", "plan", "--config", "paper-16b"],
                         capture_output=True, text=True, check=True)
    lines = res.stdout.splitlines()
    row = next(line.split() for line in lines if line.startswith("indep_s0") and line.rstrip().endswith(("yes", "NO")))
    ranks, ep, zero, total = int(row[1]), int(row[2]), int(row[3]), float(row[8])
    assert (ranks, ep, zero) == (128, 1, 2) and row[-1] == "yes" and total < 0.9 * 80
    small = subprocess.run([sys.executable, "-m", "pathmoe.cli", "plan", "--config", "paper-16b", "--gpu-mem-gib", "24"],
                           capture_output=True, text=True, check=True).stdout
    assert any(line.startswith("indep_s0") and line.rstrip().endswith("NO") for line in small.splitlines())
    assert total * GIB > 30 * GIB  # every expert on every GPU: 16.2B bf16 parameters alone are 30 GiB
