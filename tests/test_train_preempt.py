"""Training under a scheduler: stop on its warning signal or time limit with a checkpoint and resume
bit for bit; one trainer per run directory; the CUDA device for every GPU binding SLURM may give."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from train_fixtures import run_config, tiny_data  # noqa: F401  (tiny_data is a fixture)

from pathmoe.io import read_json
from pathmoe.train.distenv import cuda_index
from pathmoe.train.preempt import EXIT_STOPPED, StopRequest, parse_time_left
from pathmoe.train.runlock import hold_run_lock, release_run_lock

TIMING_KEYS = {"tokens_per_s", "peak_mem_gib"}


@pytest.mark.parametrize("env, count, expected", [
    ({"LOCAL_RANK": "3", "CUDA_VISIBLE_DEVICES": "3"}, 1, 0),   # --gpu-bind=single:1 / --ntasks-per-gpu=1
    ({"LOCAL_RANK": "5", "CUDA_VISIBLE_DEVICES": "GPU-7f3a"}, 1, 0),  # bound by UUID
    ({"LOCAL_RANK": "3", "CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7"}, 8, 3),  # torchrun / deepspeed / plain srun
    ({"LOCAL_RANK": "2"}, 8, 2),                                 # no CUDA_VISIBLE_DEVICES: all devices
    ({}, 8, 0),                                                  # no launcher
    ({"LOCAL_RANK": "1", "CUDA_VISIBLE_DEVICES": "4,5"}, 2, 1),  # --gpus-per-task=2: first of its own
])
def test_cuda_device_follows_the_gpu_binding(env, count, expected):
    assert cuda_index(env, device_count=count) == expected


def test_cuda_device_beyond_visible_ones_is_a_clear_error():
    with pytest.raises(ValueError, match=r"LOCAL_RANK=3 but this process sees 2 CUDA device\(s\)"):
        cuda_index({"LOCAL_RANK": "3", "CUDA_VISIBLE_DEVICES": "0,1"}, device_count=2)


@pytest.mark.parametrize("text, seconds", [("0:45", 45), ("12:00", 720), ("1:02:03", 3723),
                                           ("2-00:00:10", 172810), ("UNLIMITED", None), ("INVALID", None)])
def test_squeue_time_left_parses(text, seconds):
    assert parse_time_left(text) == seconds


def test_stop_when_the_time_limit_is_near():
    assert StopRequest(margin_s=60, time_left_s=30).local_reason() == "time limit near"
    assert StopRequest(margin_s=60, time_left_s=3600).local_reason() is None
    assert StopRequest(margin_s=None).local_reason() is None  # no margin: only signals stop


HOLD_SCRIPT = "import sys, time; from pathmoe.train.runlock import hold_run_lock; hold_run_lock(sys.argv[1]); " \
              "print('held', flush=True); time.sleep(120)"


def test_second_trainer_on_a_run_directory_refuses(tiny_data, tmp_path):  # noqa: F811
    from pathmoe.train import train

    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_SCRIPT, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ValueError, match=rf"is being trained by pid {holder.pid} on host \S+ \(lock "):
            train(run_config(run, tiny_data))
        assert not (run / "ds_ckpt").exists()  # refused before writing anything
    finally:
        holder.kill()
        holder.wait()
    hold_run_lock(run)  # the kernel dropped the dead holder's lock
    release_run_lock(run)


STOP_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from pathmoe.train import metrics
    from pathmoe.cli import main
    write = metrics.MetricsLog.write
    def write_then_signal(self, rec):
        write(self, rec)
        if rec["step"] == 13:  # mid-way between the step-10 and step-20 checkpoints
            os.kill(os.getpid(), signal.SIGUSR1)
    metrics.MetricsLog.write = write_then_signal
    sys.exit(main(["train", "--run-config", sys.argv[1]]))
""")


def test_warning_signal_checkpoints_stops_and_resumes_bit_exact(tiny_data, tmp_path):  # noqa: F811
    from pathmoe.train import train
    from pathmoe.train.metrics import read_metrics

    train_over = {"steps": 20, "ckpt_every": 10, "export_every": 10, "threads": 1}
    ref = tmp_path / "ref"
    train(run_config(ref, tiny_data, train=train_over))

    run = tmp_path / "stopped"
    run.mkdir()
    (run / "run_config.json").write_text(json.dumps(run_config(run, tiny_data, train=train_over)))
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT",
                                                            "SLURM_JOB_ID")}
    env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "1")
    proc = subprocess.run([sys.executable, "-c", STOP_SCRIPT, str(run / "run_config.json")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == EXIT_STOPPED, proc.stderr[-2000:]
    assert "training stopped at step 13 (SIGUSR1)" in proc.stderr
    assert read_json(run / "ds_ckpt/complete.json")["tags"] == ["step_10", "step_13"]  # no step lost
    assert not (run / "train_summary.json").exists()

    summary = train(run / "run_config.json")
    assert summary["resumed_from"] == 13
    strip = lambda recs: [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in recs]  # noqa: E731
    assert strip(read_metrics(run / "metrics.jsonl")) == strip(read_metrics(ref / "metrics.jsonl"))
