"""Resuming on another number of ranks: a ZeRO-1 run saved by 2 torchrun ranks (gloo) resumes on 1
after `pathmoe convert-checkpoint` (DeepSpeed's universal checkpoint), and refuses in one line
naming that command before it."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_expert_parallel import KILL_SCRIPT, torchrun
from train_fixtures import DATASET, run_config

from pathmoe.io import read_json
from pathmoe.train.elastic import resume_plan
from pathmoe.train.metrics import read_metrics


def _single(args: list[str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, "-m", "pathmoe.cli", *args], env=env, capture_output=True, text=True,
                          timeout=600)


def test_resume_plan_by_zero_stage_and_dispatch(tmp_path):
    assert resume_plan(tmp_path, "step_10", 2, 2, 1, "dropless") == ("step_10", False)  # same ranks
    assert resume_plan(tmp_path, "step_10", None, 4, 1, "dropless") == ("step_10", False)  # not recorded
    assert resume_plan(tmp_path, "step_10", 2, 1, 0, "deepspeed") == ("step_10", False)  # no ZeRO: full state
    with pytest.raises(ValueError, match=r"convert it once with `pathmoe convert-checkpoint --run-dir "):
        resume_plan(tmp_path, "step_10", 2, 1, 2, "dropless")
    with pytest.raises(ValueError, match="resume it on 2 ranks"):
        resume_plan(tmp_path, "step_10", 2, 4, 1, "deepspeed")
    (tmp_path / "ds_ckpt" / "step_10_universal").mkdir(parents=True)
    assert resume_plan(tmp_path, "step_10", 2, 1, 2, "dropless") == ("step_10_universal", True)


def test_zero1_run_of_2_ranks_resumes_on_1_through_universal_checkpoint(tmp_path):
    from pathmoe.data import prepare_dataset

    data = tmp_path / "data" / "builtin"
    prepare_dataset(copy.deepcopy(DATASET), data)
    run = tmp_path / "z1"
    rc = run_config(run, data, train={"steps": 20, "ckpt_every": 10, "export_every": 10, "threads": 1,
                                      "zero_stage": 1})
    run.mkdir()
    (run / "train_config.json").write_text(json.dumps(rc))
    script = tmp_path / "kill.py"
    script.write_text(KILL_SCRIPT.replace('rec["step"] == 25', 'rec["step"] == 15'))
    assert torchrun([str(script), str(run / "train_config.json")], check=False).returncode != 0  # SIGKILL at 15
    assert read_json(run / "ds_ckpt/complete.json") == {"tags": ["step_10"], "world_sizes": {"step_10": 2}}

    refused = _single(["train", "--run-config", str(run / "train_config.json")])
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert f"`pathmoe convert-checkpoint --run-dir {run}`" in lines[-1] and "saved by 2 ranks" in lines[-1]

    converted = _single(["convert-checkpoint", "--run-dir", str(run)])
    assert converted.returncode == 0, converted.stderr[-2000:]
    assert (run / "ds_ckpt/step_10_universal/zero").is_dir() and (run / "ds_ckpt/step_10_universal.prov.json").is_file()

    resumed = _single(["train", "--run-config", str(run / "train_config.json")])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = read_json(run / "train_summary.json")
    assert summary["resumed_from"] == 10 and summary["world_size"] == 1
    losses = [r["lm_loss"] for r in read_metrics(run / "metrics.jsonl")]
    assert len(losses) == 20 and losses[10] < losses[0] - 0.4  # continues the trained weights, not a fresh start
