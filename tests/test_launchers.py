"""The multi-process launch commands of docs/training.md work as printed: DeepSpeed's launcher
(which puts `--local_rank=N` before the command) and torchrun, each with 2 CPU processes (gloo).
Both train the same run as the 1-process run within float tolerance (a step draws the same windows
whatever the number of ranks)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from train_fixtures import run_config, tiny_data  # noqa: F401  (tiny_data is a fixture)

ROOT = Path(__file__).resolve().parents[1]
TRAIN = {"steps": 6, "global_batch_size": 4, "micro_batch_size": 2, "ckpt_every": 100, "export_every": 100,
         "threads": 1}


def documented(launcher: str) -> str:
    """The command of `launcher`'s row in docs/training.md's launch table, for 2 processes."""
    for line in (ROOT / "docs/training.md").read_text().splitlines():
        if line.startswith(f"| {launcher} |"):
            cmd = re.search(r"`([^`]+)`", line).group(1)
            return re.sub(r"(--num_gpus|--nproc_per_node) 8", r"\1 2", cmd)
    raise AssertionError(f"docs/training.md has no launch row for {launcher}")


def losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def one_rank(tiny_data, tmp_path_factory):  # noqa: F811
    from pathmoe.train import train

    run = tmp_path_factory.mktemp("one") / "run"
    train(run_config(run, tiny_data, train=TRAIN))
    return losses(run)


@pytest.mark.parametrize("launcher", ["DeepSpeed launcher", "torchrun"])
def test_documented_launcher_trains_two_ranks(launcher, one_rank, tiny_data, tmp_path):  # noqa: F811
    cmd = documented(launcher)
    assert "2" in cmd.split()
    run = tmp_path / "run"
    (tmp_path / "rc.json").write_text(json.dumps(run_config(run, tiny_data, train=TRAIN)))
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT",
                                                            "MASTER_ADDR")}
    env["OMP_NUM_THREADS"] = "1"
    res = subprocess.run(shlex.split(cmd), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    assert json.loads((run / "train_summary.json").read_text())["world_size"] == 2
    assert losses(run) == pytest.approx(one_rank, rel=1e-4, abs=1e-5)
