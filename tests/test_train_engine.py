"""pathmoe.train through the real DeepSpeed engine on CPU (gloo, fp32).

One process group per pytest process (DeepSpeed's init_distributed runs once); the kill -9 test
runs the interrupted run in a subprocess and resumes it here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from train_fixtures import run_config, tiny_data  # noqa: F401  (tiny_data is a fixture)

from pathmoe.io import read_json
from pathmoe.train import NonFiniteLossError, train
from pathmoe.train.metrics import read_metrics

TIMING_KEYS = {"tokens_per_s", "peak_mem_gib"}

VARIANTS = {  # paper name: model overrides (n_layers = 8 in the tiny model)
    "indep_b1": {"router": "linear", "block_size": 1},
    "random": {"router": "random"},
    "xmoe": {"router": "xmoe"},
    "recurrent": {"router": "recurrent", "recurrent_hidden": 16},
    "mono_b4": {"router": "mono", "block_size": 4},
    "lowrank": {"router": "lowrank", "lowrank_rank": 2},
    "pathmoe_all": {"router": "linear", "block_size": 8, "lbl_coef": 0.0},
    "pathb4": {"router": "linear", "block_size": 4, "lbl_coef": 0.0},
    "pathb4x": {"router": "xmoe", "block_size": 4},
}


def _deterministic(records):
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_router_variant_learns(variant, tiny_data, tmp_path):  # noqa: F811
    rc = run_config(tmp_path / variant, tiny_data, model=VARIANTS[variant],
                    train={"steps": 12, "ckpt_every": 100, "export_every": 100, "keep_exports": 1})
    summary = train(rc)
    recs = read_metrics(tmp_path / variant / "metrics.jsonl")
    assert [r["step"] for r in recs] == list(range(1, 13))
    losses = [r["lm_loss"] for r in recs]
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.3, losses
    assert losses[0] == pytest.approx(np.log(512), abs=0.3)  # starts near uniform over the vocab
    for r in recs:  # expert load per layer: shares of k*N assignments over 4 experts
        assert len(r["expert_load_max"]) == len(r["expert_load_min"]) == len(r["dead_experts"]) == 8
        assert all(lo <= 0.25 <= hi <= 1.0 for lo, hi in zip(r["expert_load_min"], r["expert_load_max"]))
        assert all(0 <= d <= 2 for d in r["dead_experts"])  # top-2 of 4: at most 2 never chosen
        assert np.isfinite(r["grad_norm"]) and r["grad_norm"] > 0
    assert summary["exports"] == ["hf/step_12"] and summary["final_loss"] == recs[-1]["loss"]
    assert summary["tokens_per_s"] > 0 and summary["peak_mem_gib"] > 0
    assert (tmp_path / variant / "hf/step_12/tokenizer.json").is_file()
    if variant == "random":  # frozen routers: the export holds exactly the seed's initial router
        from pathmoe.model import PathMoEConfig, PathMoEForCausalLM

        torch.manual_seed(0)
        init = PathMoEForCausalLM(PathMoEConfig(**{**rc["model"], "vocab_size": 512})).state_dict()
        saved = load_file(str(tmp_path / variant / "hf/step_12/model.safetensors"))
        routers = [k for k in saved if "router" in k]
        assert routers and all(np.array_equal(saved[k], init[k].numpy()) for k in routers)
        assert not all(np.array_equal(saved[k], init[k].numpy()) for k in saved)  # the rest trained


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from pathmoe.train import metrics, train
    write = metrics.MetricsLog.write
    def write_then_die(self, rec):
        if rec["step"] == 25:  # after the step-20 checkpoint and export, mid-way to the next one
            os.kill(os.getpid(), signal.SIGKILL)
        write(self, rec)
    metrics.MetricsLog.write = write_then_die
    train(sys.argv[1])
""")


def test_kill9_resume_matches_uninterrupted_run(tiny_data, tmp_path):  # noqa: F811
    # one intra-op thread in both runs (the killed one runs in a subprocess): bit-equal reductions
    train_over = {"steps": 30, "ckpt_every": 10, "export_every": 5, "keep_exports": 2, "export_steps": [10],
                  "threads": 1}
    ref = tmp_path / "ref"
    train(run_config(ref, tiny_data, train=train_over))

    run = tmp_path / "killed"
    rc = run_config(run, tiny_data, train=train_over)
    run.mkdir()
    (run / "run_config.json").write_text(json.dumps(rc))
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT"):
        env.pop(key, None)  # the child is its own single-process job
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(run / "run_config.json")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert read_json(run / "ds_ckpt/complete.json")["tags"] == ["step_10", "step_20"]
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")][-1] == 24
    assert not (run / "train_summary.json").exists()

    summary = train(run / "run_config.json")
    assert summary["resumed_from"] == 20
    assert _deterministic(read_metrics(run / "metrics.jsonl")) == _deterministic(read_metrics(ref / "metrics.jsonl"))
    for d in (run, ref):  # each kept export with its hash record, pruned ones without
        assert sorted(p.name for p in (d / "hf").iterdir()) == [
            "step_10", "step_10.prov.json", "step_25", "step_25.prov.json", "step_30", "step_30.prov.json"]
    a, b = load_file(str(run / "hf/step_30/model.safetensors")), load_file(str(ref / "hf/step_30/model.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert train(run / "run_config.json") == summary  # a finished run is not retrained


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tiny_data, tmp_path, monkeypatch):  # noqa: F811
    import pathmoe.train.loop as loop

    calls = {"n": 0}
    real = loop.next_token_loss

    def poisoned(logits, targets):
        calls["n"] += 1
        loss = real(logits, targets)
        return loss * float("inf") if calls["n"] == 2 * 12 + 2 else loss  # 2nd micro-batch of step 13

    monkeypatch.setattr(loop, "next_token_loss", poisoned)
    run = tmp_path / "nan"
    with pytest.raises(NonFiniteLossError, match=r"at step 13;.*last good checkpoint: step_10"):
        train(run_config(run, tiny_data, train={"steps": 20, "ckpt_every": 5, "export_every": 100}))
    assert read_json(run / "ds_ckpt/complete.json")["tags"] == ["step_5", "step_10"]
    assert sorted(p.name for p in (run / "ds_ckpt").iterdir()) == [  # each finished tag with its hash record
        "complete.json", "step_10", "step_10.prov.json", "step_5", "step_5.prov.json"]
    assert not (run / "train_summary.json").exists()
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")][-1] == 12

    monkeypatch.setattr(loop, "next_token_loss", real)  # the fix: resume from the good state
    summary = train(run / "train_config.json")  # written by the first start
    assert summary["resumed_from"] == 10 and np.isfinite(summary["final_loss"])


def test_bad_train_config_is_one_line_error(tiny_data, tmp_path, capsys):  # noqa: F811
    from pathmoe.cli import main

    for override, needle in (({"global_batch_size": 5}, "train.global_batch_size=5 is not divisible"),
                             ({"precision": "fp16"}, "train.precision='fp16': allowed fp32, bf16")):
        path = tmp_path / "rc.json"
        path.write_text(json.dumps(run_config(tmp_path / "bad", tiny_data, train=override)))
        assert main(["train", "--run-config", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1


def test_path_restricted_continuation(tiny_data, tmp_path, monkeypatch):  # noqa: F811
    from pathmoe.analysis.restriction import PathRestrictionHook
    from pathmoe.model import PathMoEForCausalLM
    from pathmoe.train import loop

    drawn = []  # data step of every micro-batch window draw
    real_sample = loop.sample_windows

    def sample(tokens, batch, window, seed, step, micro, rank):
        drawn.append(step)
        return real_sample(tokens, batch, window, seed, step, micro, rank)

    monkeypatch.setattr(loop, "sample_windows", sample)

    pathb8 = {"router": "linear", "block_size": 4, "lbl_coef": 0.0}
    src = tmp_path / "pathb8"
    train(run_config(src, tiny_data, model=pathb8, train={"steps": 20, "ckpt_every": 100, "export_every": 10}))
    src_first = read_metrics(src / "metrics.jsonl")[0]["lm_loss"]

    run = tmp_path / "restricted"
    init = {"checkpoint": str(src / "hf/step_20"), "step": 20, "restrict_top_paths": 3, "path_tokens": 2000}
    drawn.clear()
    train(run_config(run, tiny_data, model=pathb8, train={"steps": 6, "ckpt_every": 100, "export_every": 100},
                     init_from=init))
    # The continuation reads the data stream from the source's step on (2 micro-batches a step),
    # not the batches the source already trained on.
    assert drawn == [s for s in range(20, 26) for _ in range(2)]
    saved = read_json(run / "restricted_paths.json")
    assert len(saved["paths"]) == 3 and all(len(p) == 8 for p in saved["paths"])
    assert saved["counts"] == sorted(saved["counts"], reverse=True) and saved["num_tokens"] == 1984
    first = read_metrics(run / "metrics.jsonl")[0]["lm_loss"]
    assert first < src_first - 0.3  # continued from the trained checkpoint, not from scratch

    # Every token of the continued model, routed through the hook, stays on one of the 3 paths.
    model = PathMoEForCausalLM.from_pretrained(str(run / "hf/step_6")).eval()
    x = torch.randint(0, 512, (2, 32))
    with torch.no_grad():
        out = model(x, output_routing=True, routing_hook=PathRestrictionHook(np.array(saved["paths"])))
    taken = torch.stack([r[0][:, 0] for r in out.routing], 1).tolist()  # [N, L] top-1 paths
    assert {tuple(p) for p in taken} <= {tuple(p) for p in saved["paths"]}

    # restrict_top_paths: null is the unrestricted control: same weights, no hook, no paths file.
    free = tmp_path / "unrestricted"
    drawn.clear()
    init_free = {k: v for k, v in init.items() if k != "step"}  # without the key: from the export's name
    train(run_config(free, tiny_data, model=pathb8, train={"steps": 2, "ckpt_every": 100, "export_every": 100},
                     init_from={**init_free, "restrict_top_paths": None}))
    assert drawn == [20, 20, 21, 21]
    assert not (free / "restricted_paths.json").exists()
    assert read_metrics(free / "metrics.jsonl")[0]["lm_loss"] < src_first - 0.3
