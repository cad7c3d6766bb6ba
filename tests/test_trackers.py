"""train.trackers: validated up front, and a resumed run's tracker logs hold every step exactly once.

The resume test kills a real training run (DeepSpeed on CPU) between checkpoints in a subprocess,
resumes it here, and reads back TensorBoard's own event files and the CSV: the steps logged after
the last checkpoint before the kill must not appear twice.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import yaml
from train_fixtures import run_config, tiny_data  # noqa: F401  (tiny_data is a fixture)

from pathmoe import tracker_rules
from pathmoe.config import REPO_CONFIGS, ConfigError, load_experiment
from pathmoe.train.metrics import read_metrics
from pathmoe.train.spec import parse_train_spec


def _default_cfg() -> dict:
    return yaml.safe_load((REPO_CONFIGS / "default.yaml").read_text())


def test_trackers_default_off_and_validated_at_config_load(monkeypatch):
    exp = load_experiment(_default_cfg())
    assert all(spec.train["trackers"] == [] for spec in exp.runs.values())
    with pytest.raises(ConfigError, match=r"train.trackers.0='tb' is not allowed; allowed: 'csv', 'tensorboard', 'wandb'"):
        load_experiment(_default_cfg(), {"train": {"trackers": ["tb"]}})
    with pytest.raises(ConfigError, match=r"runs.indep.train.tensorboard: was replaced by train.trackers"):
        load_experiment(_default_cfg(), {"runs": {"indep": {"train": {"tensorboard": True}}}})
    real = importlib.util.find_spec
    monkeypatch.setattr(tracker_rules.importlib.util, "find_spec",
                        lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ConfigError) as err:
        load_experiment(_default_cfg(), {"scales": {"tiny": {"train": {"trackers": ["csv", "wandb"]}}}})
    msg = str(err.value)
    assert "\n" not in msg and "scales.tiny.train.trackers" in msg and "pip install 'pathmoe[trackers]'" in msg
    with pytest.raises(ValueError, match="needs the 'wandb' package"):  # the train job checks again
        parse_train_spec({"trackers": ["wandb"]})
    with pytest.raises(ValueError, match="train.tensorboard was replaced by train.trackers"):
        parse_train_spec({"tensorboard": True})


def test_trackers_do_not_change_the_training_identity(tmp_path):
    from pathmoe.train.checkpoint import settings_hash

    rc = run_config(tmp_path / "r", tmp_path / "d")
    assert settings_hash(rc) == settings_hash({**rc, "train": {**rc["train"], "trackers": ["csv"]}})


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from pathmoe.train import metrics, train
    write = metrics.MetricsLog.write
    def write_then_die(self, rec):
        if rec["step"] == 8:  # after the step-5 checkpoint: steps 6 and 7 are logged twice
            os.kill(os.getpid(), signal.SIGKILL)
        write(self, rec)
    metrics.MetricsLog.write = write_then_die
    train(sys.argv[1])
""")


def _tb_scalars(log_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_resume_leaves_no_duplicate_tracker_steps(tiny_data, tmp_path, monkeypatch):  # noqa: F811
    pytest.importorskip("tensorboard")
    from pathmoe.train import train

    trackers = ["tensorboard", "csv"] + (["wandb"] if importlib.util.find_spec("wandb") else [])
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    rc = run_config(run, tiny_data, train={"steps": 12, "ckpt_every": 5, "export_every": 100, "keep_exports": 1,
                                          "threads": 1, "trackers": trackers})
    run.mkdir()
    (run / "run_config.json").write_text(json.dumps(rc))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT"):
        env.pop(key, None)  # the child is its own single-process job
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(run / "run_config.json")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert [s for s, _ in _tb_scalars(run / "tensorboard", "train/loss")] == list(range(1, 8))  # logged before the kill

    summary = train(run / "run_config.json")
    assert summary["resumed_from"] == 5
    metrics = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in metrics] == list(range(1, 13))
    for tag, key in (("train/loss", "loss"), ("train/lr", "lr"), ("train/dead_experts/3", None)):
        scalars = _tb_scalars(run / "tensorboard", tag)
        assert [s for s, _ in scalars] == list(range(1, 13)), tag  # each step once: 6 and 7 were purged
        want = [r[key] if key else r["dead_experts"][3] for r in metrics]
        assert [v for _, v in scalars] == pytest.approx(want, rel=1e-6)
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(1, 13))
    assert [float(r["grad_norm"]) for r in rows] == pytest.approx([r["grad_norm"] for r in metrics], rel=1e-9)
    assert [int(r["dead_experts/7"]) for r in rows] == [r["dead_experts"][7] for r in metrics]
    if "wandb" in trackers:  # both sessions logged to one offline W&B run
        run_id = (run / "wandb" / "run_id").read_text().strip()
        offline = sorted((run / "wandb" / "wandb").glob("offline-run-*"))
        assert len(offline) == 2 and all((d / f"run-{run_id}.wandb").is_file() for d in offline)
