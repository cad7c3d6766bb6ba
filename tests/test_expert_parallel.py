"""Expert parallelism (the `deepspeed` dispatch, EP=2) on 2 CPU ranks launched by torchrun with gloo.

Each training runs in its own torchrun job (one process group per job), as a cluster job would:
an uninterrupted EP=2 run, the same run killed with SIGKILL after its step-20 checkpoint and
resumed, and the same model trained on the same 2 ranks with the dropless dispatch (no expert
parallelism). The runs are module fixtures, shared by the tests below.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from train_fixtures import DATASET, run_config

from pathmoe.io import read_json
from pathmoe.train.metrics import read_metrics

TIMING_KEYS = {"tokens_per_s", "peak_mem_gib"}
# capacity_factor = E / k: an expert's buffer holds every token, so the deepspeed dispatch drops none
# and computes what the dropless dispatch computes
EP2 = {"dispatch": "deepspeed", "expert_parallel_size": 2, "capacity_factor": 2.0}
# No clipping: with EP, DeepSpeed clips by the mean over ranks of each rank's own gradient norm (its
# experts + the dense part), not by the global norm, so a clipped EP run and a clipped dropless run
# differ by more than float noise (docs/training.md, "Expert parallelism").
TRAIN = {"steps": 30, "ckpt_every": 10, "export_every": 10, "keep_exports": 2, "threads": 1, "grad_clip": 0.0,
         "export_steps": [10]}

KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from pathmoe.train import metrics, train
    write = metrics.MetricsLog.write
    def write_then_die(self, rec):
        if rec["step"] == 25:  # every rank, after the step-20 checkpoint, mid-way to the next one
            os.kill(os.getpid(), signal.SIGKILL)
        write(self, rec)
    metrics.MetricsLog.write = write_then_die
    train(sys.argv[1])
""")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args: list[str], nproc: int = 2, check: bool = True) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node <nproc> <args>` on this machine (gloo, one intra-op thread per rank)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT",
                                                             "MASTER_ADDR")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_addr",
           "127.0.0.1", "--master_port", str(_port()), *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def _write_rc(run_dir: Path, data_dir: Path, model: dict, train: dict | None = None) -> Path:
    rc = run_config(run_dir, data_dir, model=model, train={**TRAIN, **(train or {})})
    run_dir.mkdir(parents=True)
    path = run_dir / "run_config.json"
    path.write_text(json.dumps(rc))
    return path


def _train(rc: Path, nproc: int = 2) -> None:
    torchrun(["-m", "pathmoe.cli", "train", "--run-config", str(rc)], nproc)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """run dirs: `ref` (EP=2, uninterrupted), `killed` (EP=2, SIGKILL at step 25, then resumed),
    `dropless` (the same model and data on 2 ranks without expert parallelism)."""
    import copy

    from pathmoe.data import prepare_dataset

    root = tmp_path_factory.mktemp("ep")
    data = root / "data" / "builtin"
    prepare_dataset(copy.deepcopy(DATASET), data)
    ref = _write_rc(root / "ref", data, EP2)
    _train(ref)
    killed = _write_rc(root / "killed", data, EP2)
    script = root / "kill.py"
    script.write_text(KILL_SCRIPT)
    proc = torchrun([str(script), str(killed)], check=False)
    assert proc.returncode != 0, "the killed run finished"
    run = killed.parent
    assert read_json(run / "ds_ckpt/complete.json")["tags"] == ["step_10", "step_20"], proc.stderr[-2000:]
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")][-1] == 24
    assert not (run / "train_summary.json").exists()
    _train(killed)
    dropless = _write_rc(root / "dropless", data, {})
    _train(dropless)
    return {"ref": ref.parent, "killed": run, "dropless": dropless.parent}


def _deterministic(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


def test_ep2_kill9_resume_equals_uninterrupted_run(runs):
    ref, run = runs["ref"], runs["killed"]
    assert read_json(run / "train_summary.json")["resumed_from"] == 20
    assert read_json(run / "train_summary.json")["world_size"] == 2
    assert _deterministic(read_metrics(run / "metrics.jsonl")) == _deterministic(read_metrics(ref / "metrics.jsonl"))
    for step in (20, 30):
        a = load_file(str(run / f"hf/step_{step}/model.safetensors"))
        b = load_file(str(ref / f"hf/step_{step}/model.safetensors"))
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_ep2_checkpoint_holds_one_file_per_expert_and_no_experts_in_the_dense_file(runs):
    tag = runs["ref"] / "ds_ckpt/step_20"
    names = {p.name for p in tag.iterdir()}
    assert {f"layer_{l}_expert_{e}_mp_rank_00_model_states.pt" for l in range(8) for e in range(4)} <= names
    assert {"expp_rank_0_mp_rank_00_optim_states.pt", "expp_rank_1_mp_rank_00_optim_states.pt"} <= names
    dense = torch.load(tag / "mp_rank_00_model_states.pt", map_location="cpu", weights_only=False)["module"]
    assert dense and not [k for k in dense if "expert" in k]


def test_ep2_export_gathers_every_rank_shards(runs):
    """The step-20 export holds all 4 experts per layer; expert j is exactly the tensor rank j // 2 saved."""
    ref = runs["ref"]
    export = load_file(str(ref / "hf/step_20/model.safetensors"))
    config = read_json(ref / "hf/step_20/config.json")
    assert config["dispatch"] == "dropless" and config["n_experts"] == 4
    for layer in range(8):
        for name in ("w_up", "w_down"):
            full = export[f"layers.{layer}.ffn.experts.{name}"]
            assert full.shape[0] == 4
            for e in range(4):  # rank e // 2 wrote expert e (DeepSpeed's global expert id)
                shard = torch.load(ref / f"ds_ckpt/step_20/layer_{layer}_expert_{e}_mp_rank_00_model_states.pt",
                                   map_location="cpu", weights_only=False)
                key = f"layers.{layer}.ffn.ds.deepspeed_moe.experts.deepspeed_experts.{e}.{name}"
                assert np.array_equal(full[e], shard[key].numpy())


def test_ep2_export_equals_training_without_expert_parallelism(runs):
    """Same model, data and ranks, dropless dispatch: the same weights up to float reordering.

    Compared at step 10: routing is discrete, so once float-level differences of the reduction order
    flip one top-k choice (here after ~15 steps at lr 1e-2) the two runs drift apart like any two
    runs with different summation orders; up to then they agree to float precision (Adam turns a
    gradient's last-bit difference into up to ~1e-4 of a weight whose gradient is near zero).
    A wrong gather or expert placement differs by the weights' own scale (~1e-2).
    """
    ep = load_file(str(runs["ref"] / "hf/step_10/model.safetensors"))
    plain = load_file(str(runs["dropless"] / "hf/step_10/model.safetensors"))
    assert ep.keys() == plain.keys()
    for k in ep:
        assert ep[k].shape == plain[k].shape, k
        assert np.allclose(ep[k], plain[k], rtol=1e-3, atol=3e-4), (k, float(np.abs(ep[k] - plain[k]).max()))
    a, b = read_metrics(runs["ref"] / "metrics.jsonl")[:10], read_metrics(runs["dropless"] / "metrics.jsonl")[:10]
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, 11))
    assert np.allclose([r["lm_loss"] for r in a], [r["lm_loss"] for r in b], rtol=1e-6)
    # the global grad norm summed over the expert-parallel group; at the loss spikes (norm ~20x the
    # usual) it amplifies the float noise to ~1e-3 relative
    assert np.allclose([r["grad_norm"] for r in a], [r["grad_norm"] for r in b], rtol=5e-3)


LOAD_SCRIPT = textwrap.dedent("""
    import sys, json
    import torch, torch.distributed as dist
    from pathmoe.analysis.suite import load_model
    from pathmoe.eval.checkpoint import load_checkpoint
    out = {}
    for ckpt in sys.argv[1:]:
        model, _ = load_checkpoint(ckpt, device="cpu")
        analysis = load_model(ckpt, torch.device("cpu"))
        tokens = torch.arange(16)[None] % 100
        with torch.no_grad():
            out[ckpt] = [m.config.dispatch for m in (model, analysis)] + [
                float(model(tokens).logits.double().sum()), float(analysis(tokens).logits.double().sum())]
    out["process_group"] = dist.is_initialized()
    print(json.dumps(out))
""")


def test_eval_and_analysis_load_exports_of_both_dispatches_without_process_group(runs):
    ckpts = [str(runs[r] / "hf/step_30") for r in ("ref", "dropless")]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    proc = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, *ckpts], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["process_group"] is False
    for ckpt in ckpts:
        eval_dispatch, analysis_dispatch, eval_sum, analysis_sum = out[ckpt]
        assert eval_dispatch == analysis_dispatch == "dropless" and eval_sum == analysis_sum


@pytest.mark.slow
def test_ep2_with_data_parallel_2_on_4_ranks_equals_dropless(tmp_path):
    """4 ranks: expert-parallel groups [0, 1] and [2, 3], each expert data parallel over 2 ranks; the
    export (gathered on ranks 0-1) equals a 4-rank dropless run's at step 10 to float precision."""
    import copy

    from pathmoe.data import prepare_dataset

    data = tmp_path / "data" / "builtin"
    prepare_dataset(copy.deepcopy(DATASET), data)
    over = {"steps": 10, "ckpt_every": 5, "export_steps": [], "global_batch_size": 8}
    ep = _write_rc(tmp_path / "ep2dp2", data, EP2, over)
    plain = _write_rc(tmp_path / "dl4", data, {}, over)
    for rc in (ep, plain):
        _train(rc, nproc=4)
    assert read_json(ep.parent / "train_summary.json")["world_size"] == 4
    names = {p.name for p in (ep.parent / "ds_ckpt/step_5").iterdir()}
    assert {f"layer_{l}_expert_{e}_mp_rank_00_model_states.pt" for l in range(8) for e in range(4)} <= names
    a = load_file(str(ep.parent / "hf/step_10/model.safetensors"))
    b = load_file(str(plain.parent / "hf/step_10/model.safetensors"))
    assert a["layers.0.ffn.experts.w_up"].shape[0] == 4
    for k in a:
        assert np.allclose(a[k], b[k], rtol=1e-3, atol=3e-4), (k, float(np.abs(a[k] - b[k]).max()))
    la, lb = read_metrics(ep.parent / "metrics.jsonl"), read_metrics(plain.parent / "metrics.jsonl")
    assert np.allclose([r["lm_loss"] for r in la], [r["lm_loss"] for r in lb], rtol=1e-6)
