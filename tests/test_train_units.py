"""Engine-free pieces of pathmoe.train: schedule, spec, sampler, metrics log, exports, env."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch

from pathmoe.train.checkpoint import export_steps_to_keep, prune_exports
from pathmoe.train.distenv import setup_dist_env
from pathmoe.train.dsconfig import build_ds_config
from pathmoe.train.metrics import MetricsLog, expert_load, read_metrics
from pathmoe.train.optim import param_groups
from pathmoe.train.sampler import sample_windows
from pathmoe.train.schedule import lr_factor
from pathmoe.train.spec import parse_train_spec


def test_lr_schedule_closed_form():
    total, warm, lo = 100, 10, 0.1
    assert lr_factor(0, total, warm, lo) == pytest.approx(0.1)
    assert lr_factor(9, total, warm, lo) == pytest.approx(1.0)
    assert lr_factor(10, total, warm, lo) == pytest.approx(1.0)
    mid = 10 + (total - 1 - 10) / 2
    assert lr_factor(int(mid), total, warm, lo) == pytest.approx(
        lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * (int(mid) - 10) / 89)))
    assert lr_factor(total - 1, total, warm, lo) == pytest.approx(lo)
    assert lr_factor(total + 50, total, warm, lo) == pytest.approx(lo)
    vals = [lr_factor(s, total, warm, lo) for s in range(warm, total)]
    assert all(a >= b for a, b in zip(vals, vals[1:]))  # monotone decay after warmup


def test_spec_errors_name_the_key():
    with pytest.raises(ValueError, match=r"train.global_batch_size=12 is not divisible"):
        parse_train_spec({"global_batch_size": 12, "micro_batch_size": 8}).grad_accum(1)
    with pytest.raises(ValueError, match=r"train.precision='fp16': allowed fp32, bf16"):
        parse_train_spec({"precision": "fp16"})
    with pytest.raises(ValueError, match=r"train.bogus: unknown key"):
        parse_train_spec({"bogus": 1})
    with pytest.raises(ValueError, match=r"train.zero_stage=4"):
        parse_train_spec({"zero_stage": 4})
    with pytest.raises(ValueError, match=r"train.betas"):
        parse_train_spec({"betas": [0.9]})
    spec = parse_train_spec({"global_batch_size": 32, "micro_batch_size": 4})
    assert spec.grad_accum(2) == 4
    cfg = build_ds_config(spec, 2)
    assert cfg["train_batch_size"] == cfg["train_micro_batch_size_per_gpu"] * cfg["gradient_accumulation_steps"] * 2


def test_sampler_is_a_pure_function_of_its_indices():
    tokens = np.arange(1000, dtype=np.uint16)
    a = sample_windows(tokens, 4, 17, seed=3, step=5, micro_step=1, rank=0)
    b = sample_windows(tokens, 4, 17, seed=3, step=5, micro_step=1, rank=0)
    assert a.shape == (4, 17) and a.dtype == torch.long
    assert torch.equal(a, b)
    assert torch.equal(a[:, 1:] - a[:, :-1], torch.ones(4, 16, dtype=torch.long))  # consecutive tokens
    for other in ({"step": 6}, {"micro_step": 0}, {"rank": 1}, {"seed": 4}):
        kw = {"seed": 3, "step": 5, "micro_step": 1, "rank": 0, **other}
        assert not torch.equal(a, sample_windows(tokens, 4, 17, **kw))

    class Shards:  # the TokenShards read interface: window-by-window across shard boundaries
        num_tokens = 1000

        def window(self, start, length):
            return np.arange(start, start + length, dtype=np.int64)

    assert torch.equal(a, sample_windows(Shards(), 4, 17, seed=3, step=5, micro_step=1, rank=0))
    with pytest.raises(ValueError, match="fewer than one window"):
        sample_windows(tokens[:10], 1, 17, 0, 0, 0, 0)


def test_metrics_log_truncates_after_resume_step(tmp_path):
    log = MetricsLog(tmp_path / "m.jsonl")
    for s in (1, 10, 20, 30):
        log.write({"step": s, "loss": float(s)})
    log.close()
    with open(tmp_path / "m.jsonl", "a") as f:
        f.write('{"step": 40, "lo')  # torn by a kill
    log = MetricsLog(tmp_path / "m.jsonl")
    log.truncate_after(20)
    log.write({"step": 30, "loss": 30.0})
    log.close()
    assert [r["step"] for r in read_metrics(tmp_path / "m.jsonl")] == [1, 10, 20, 30]


def test_expert_load_counts():
    ids = torch.tensor([[0, 1], [0, 2], [0, 1], [3, 0]])  # 8 assignments over 5 experts
    load = expert_load([(ids, None, None), (torch.zeros(4, 2, dtype=torch.long), None, None)], 5)
    assert load["expert_load_max"] == [0.5, 1.0]
    assert load["expert_load_min"] == [0.0, 0.0]
    assert load["dead_experts"] == [1, 4]


def test_export_selection_keeps_final_and_pinned(tmp_path):
    assert export_steps_to_keep(range(10, 110, 10), 5, [20, 999]) == [20, 60, 70, 80, 90, 100]
    for s in (5, 10, 15, 20, 25, 27):
        (tmp_path / f"step_{s}").mkdir()
    (tmp_path / ".step_30.tmp").mkdir()  # an unfinished export is never counted
    assert prune_exports(tmp_path, 2, [5]) == [5, 25, 27]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("step_")) == ["step_25", "step_27", "step_5"]


def test_dist_env_mapping():
    env = {"SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_NTASKS": "8", "SLURM_JOB_NODELIST": "gpu01",
           "SLURM_JOB_ID": "1234"}
    assert setup_dist_env(env) == {"rank": 3, "world_size": 8, "local_rank": 1}
    assert env["MASTER_ADDR"] == "gpu01" and env["MASTER_PORT"] == "29734"
    env = {}
    assert setup_dist_env(env) == {"rank": 0, "world_size": 1, "local_rank": 0}
    assert env["MASTER_ADDR"] == "127.0.0.1" and 0 < int(env["MASTER_PORT"]) < 65536
    env = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "h", "MASTER_PORT": "1"}
    assert setup_dist_env(dict(env)) == {"rank": 1, "world_size": 2, "local_rank": 1}


def test_param_groups_exclude_frozen_and_skip_decay():
    m = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 4), torch.nn.LayerNorm(4),
                            torch.nn.Linear(4, 3, bias=False))
    m[3].weight.requires_grad_(False)  # a frozen (random) router
    groups = {g["name"]: g for g in param_groups(m, 0.1)}
    assert [tuple(p.shape) for p in groups["decay"]["params"]] == [(4, 4)]
    assert groups["decay"]["weight_decay"] == 0.1 and groups["no_decay"]["weight_decay"] == 0.0
    ids = {id(p) for g in groups.values() for p in g["params"]}
    assert id(m[0].weight) in ids and id(m[3].weight) not in ids
    assert len(ids) == sum(1 for p in m.parameters() if p.requires_grad)


class _FakeEngine:
    """Stands in for DeepSpeedEngine.save_checkpoint: writes a tag dir, optionally dies half-way."""

    def __init__(self):
        self.die = False

    def save_checkpoint(self, save_dir, tag, client_state, save_latest):
        from pathlib import Path

        d = Path(save_dir) / tag
        d.mkdir(parents=True, exist_ok=True)
        (d / "part0.pt").write_text("x")
        if self.die:
            raise KeyboardInterrupt("killed mid-save")
        (d / "part1.pt").write_text(json.dumps(client_state))


def test_resume_checkpoints_trust_only_the_marker(tmp_path):
    from pathmoe.train.checkpoint import ResumeCheckpoints

    ck, eng = ResumeCheckpoints(tmp_path, rank=0), _FakeEngine()
    assert ck.latest() is None
    for step in (10, 20, 30):
        ck.save(eng, step, {"step": step})
    assert ck.complete_tags() == ["step_20", "step_30"] and not (tmp_path / "step_10").exists()
    eng.die = True
    with pytest.raises(KeyboardInterrupt):
        ck.save(eng, 40, {"step": 40})
    assert (tmp_path / "step_40").is_dir() and ck.latest() == "step_30"  # torn tag is ignored
    eng.die = False
    ck.save(eng, 40, {"step": 40})  # the torn directory is cleared before saving again
    assert sorted(p.name for p in (tmp_path / "step_40").iterdir()) == ["part0.pt", "part1.pt"]
    assert ck.complete_tags() == ["step_30", "step_40"]


def test_cli_accepts_launcher_local_rank(monkeypatch):
    """DeepSpeed's launcher runs `python -m pathmoe.cli --local_rank=N train ...` (before the command)."""
    from pathmoe.cli import take_local_rank

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert take_local_rank(["--local_rank=3", "train", "--run-config", "rc.json"]) == ["train", "--run-config", "rc.json"]
    assert os.environ["LOCAL_RANK"] == "3"
    monkeypatch.delenv("LOCAL_RANK")
    assert take_local_rank(["train", "--run-config", "rc.json", "--local-rank", "1"]) == ["train", "--run-config", "rc.json"]
    assert os.environ["LOCAL_RANK"] == "1"


def test_state_of_a_different_run_spec_is_dropped(tmp_path):
    from pathmoe.train.checkpoint import reset_if_state_changed

    rc = {"run": "r", "train": {"steps": 10}}
    assert not reset_if_state_changed(tmp_path, rc, "d1")  # fresh dir: nothing to drop
    (tmp_path / "ds_ckpt").mkdir()
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    assert not reset_if_state_changed(tmp_path, rc, "d1")  # same spec: resume keeps the state
    assert not reset_if_state_changed(tmp_path, {**rc, "eval": {"batch_size": 7}, "analysis": {"tokens": 9}}, "d1")
    assert (tmp_path / "ds_ckpt").is_dir()  # eval/analysis settings do not touch training state
    assert reset_if_state_changed(tmp_path, {"run": "r", "train": {"steps": 20}}, "d1")  # edited spec
    assert not (tmp_path / "ds_ckpt").exists() and not (tmp_path / "metrics.jsonl").exists()


def test_state_trained_on_other_data_restarts_or_refuses(tmp_path, capsys):
    from pathmoe.train.checkpoint import DataChangedError, reset_if_state_changed

    rc = {"run": "r", "data_dir": "results/x/data/corpus", "train": {"steps": 10}}
    reset_if_state_changed(tmp_path, rc, "a" * 64)
    (tmp_path / "ds_ckpt").mkdir()
    (tmp_path / "hf" / "step_5").mkdir(parents=True)
    (tmp_path / "train_summary.json").write_text("{}")
    # refuse: nothing is deleted, and the one-line error says how to choose
    with pytest.raises(DataChangedError) as err:
        reset_if_state_changed(tmp_path, {**rc, "train": {"steps": 10, "on_data_change": "refuse"}}, "b" * 64)
    assert "\n" not in str(err.value) and "train.on_data_change: restart" in str(err.value)
    assert (tmp_path / "ds_ckpt").is_dir() and (tmp_path / "hf" / "step_5").is_dir()
    # switching on_data_change is a choice, not a spec change: with the old data nothing resets
    assert not reset_if_state_changed(tmp_path, {**rc, "train": {"steps": 10, "on_data_change": "refuse"}}, "a" * 64)
    capsys.readouterr()
    # restart (the default): every piece of trained state goes, with a one-line notice naming the data
    assert reset_if_state_changed(tmp_path, rc, "b" * 64)
    notice = capsys.readouterr().out.strip()
    assert "\n" not in notice and "data changed (dataset identity aaaaaaaaaaaa -> bbbbbbbbbbbb)" in notice
    assert not any((tmp_path / n).exists() for n in ("ds_ckpt", "hf", "train_summary.json"))
    assert (tmp_path / "data_hash").read_text().strip() == "b" * 64


def test_throughput_excludes_warmup_and_work_after_the_last_step(monkeypatch):
    import pathmoe.train.measure as measure

    clock = iter([10.0, 11.0, 13.0, 100.0])  # t0 after warm-up step 2, then steps 3 and 4, then a slow export
    monkeypatch.setattr(measure.time, "perf_counter", lambda: next(clock))
    meter = measure.Throughput(tokens_per_step=100, warmup=2, device=torch.device("cpu"))
    assert meter.tokens_per_s() == 0.0
    for _ in range(4):
        meter.step_done()
    assert meter.tokens_per_s() == pytest.approx(2 * 100 / 3.0)  # 2 timed steps in 13 - 10 s


def test_misspelt_model_key_in_a_run_spec_is_an_error():
    from pathmoe.train.loop import _build_model

    model = {"d_model": 32, "n_layers": 2, "n_heads": 2, "n_kv_heads": 1, "n_experts": 4, "top_k": 2,
             "expert_hidden": 32, "max_seq_len": 64, "vocab_size": None}
    assert _build_model({"model": model}, 64).config.vocab_size == 64
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['routr'\]"):
        _build_model({"model": {**model, "routr": "mono"}}, 64)
