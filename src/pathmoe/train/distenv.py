"""Process-group environment for every launcher: DeepSpeed's, torchrun, srun, or none.

DeepSpeed reads RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT; without them it tries
mpi4py. srun sets only SLURM_* variables, and a plain `python` sets nothing, so both are mapped
here before `deepspeed.init_distributed` runs (once per process: DeepSpeed keeps the group).
"""

from __future__ import annotations

import os
import tempfile
import socket


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _first_host(nodelist: str) -> str:
    """The first host of a SLURM node list (`gpu[01-04]` -> `gpu01`): every rank computes the same one."""
    import subprocess

    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ValueError(f"MASTER_ADDR is unset under srun with several nodes and `scontrol show hostnames` "
                         f"failed ({exc}); export MASTER_ADDR=<first node of {nodelist}>") from None
    hosts = out.stdout.split()
    if out.returncode != 0 or not hosts:
        raise ValueError(f"MASTER_ADDR is unset under srun with several nodes and `scontrol show hostnames "
                         f"{nodelist}` failed: {out.stderr.strip()}; export MASTER_ADDR=<its first node>")
    return hosts[0]


def setup_dist_env(env: dict[str, str] | None = None) -> dict[str, int]:
    """Fill the torch.distributed variables in `env` (default os.environ); return rank/world/local."""
    env = os.environ if env is None else env
    if "RANK" not in env:
        if "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
            env["RANK"] = env["SLURM_PROCID"]
            env["WORLD_SIZE"] = env["SLURM_NTASKS"]
            env["LOCAL_RANK"] = env.get("SLURM_LOCALID", "0")
            if "MASTER_ADDR" not in env:
                nodes = env.get("SLURM_STEP_NODELIST", env.get("SLURM_JOB_NODELIST", env.get("SLURM_NODELIST", "")))
                if nodes and "[" not in nodes and "," not in nodes:
                    env["MASTER_ADDR"] = nodes
                elif int(env["WORLD_SIZE"]) > 1:
                    env["MASTER_ADDR"] = _first_host(nodes)
            if "MASTER_PORT" not in env:
                env["MASTER_PORT"] = str(29500 + int(env.get("SLURM_JOB_ID", "0")) % 1000)
        else:
            env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"] = "0", "1", "0"
    env.setdefault("LOCAL_RANK", "0")
    env.setdefault("WORLD_SIZE", "1")
    env.setdefault("MASTER_ADDR", "127.0.0.1")
    if "MASTER_PORT" not in env:
        if int(env["WORLD_SIZE"]) > 1:
            raise ValueError("MASTER_PORT is unset with WORLD_SIZE > 1; set it (all ranks must agree)")
        env["MASTER_PORT"] = str(_free_port())
    return {"rank": int(env["RANK"]), "world_size": int(env["WORLD_SIZE"]), "local_rank": int(env["LOCAL_RANK"])}


def init_distributed(backend: str) -> dict[str, int]:
    """Set up the env and DeepSpeed's process group once per process (later calls are no-ops)."""
    import deepspeed
    import torch.distributed as dist

    info = setup_dist_env()
    if not dist.is_initialized():
        if info["world_size"] == 1:
            # One process: rendezvous through a private file, not a TCP port. Picking a "free" port
            # and binding it later races with every other job on the machine (two pipeline jobs
            # starting together got the same port and one died with EADDRINUSE).
            fd, store = tempfile.mkstemp(prefix="pathmoe-dist-")
            os.close(fd)
            os.unlink(store)  # the file store creates it; it must not exist yet
            deepspeed.init_distributed(dist_backend=backend, init_method=f"file://{store}", rank=0, world_size=1)
        else:
            deepspeed.init_distributed(dist_backend=backend)
    return info


def cuda_index(env: dict[str, str] | None = None, device_count: int | None = None) -> int:
    """The CUDA device this process trains on, for every GPU binding a launcher may give.

    SLURM with `--ntasks-per-gpu=1` / `--gpu-bind=single:1` (or `--gpus-per-task=1`) shows each
    task one device (CUDA_VISIBLE_DEVICES lists one): it is device 0, whatever LOCAL_RANK says.
    torchrun, DeepSpeed's launcher and a plain `srun` show every GPU of the node: device LOCAL_RANK.
    `device_count`: devices visible to this process (torch.cuda.device_count()).
    """
    env = os.environ if env is None else env
    local_rank = int(env.get("LOCAL_RANK", "0"))
    visible = [d for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    count = len(visible) if visible else device_count
    if count == 1:
        return 0
    if count is not None and local_rank >= count:
        raise ValueError(f"LOCAL_RANK={local_rank} but this process sees {count} CUDA device(s) "
                         f"(CUDA_VISIBLE_DEVICES={env.get('CUDA_VISIBLE_DEVICES', '<unset>')}); give each task "
                         "one GPU (--gpus-per-task=1) or all of the node's GPUs")
    return local_rank
