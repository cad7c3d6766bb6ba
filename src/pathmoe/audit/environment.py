"""Who, where and with what code an artifact was made: the context half of a provenance record.

Everything here is cheap and never fails: a missing tool (git, nvidia driver, a package) becomes
null in the record rather than an error, because a record must be writable on any machine.
Nothing imports torch or deepspeed (every Snakemake job is wrapped by a record, and the import
alone costs about a second): package versions come from installed distribution metadata, GPU
names from the NVIDIA driver (nvidia-smi, else /proc/driver/nvidia).
"""

from __future__ import annotations

import functools
import getpass
import os
import platform
import re
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import pathmoe

# record key -> distribution names to try (the first installed one wins)
PACKAGES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "deepspeed": ("deepspeed",),
    "transformers": ("transformers",),
    "lm_eval": ("lm_eval", "lm-eval"),
    "snakemake": ("snakemake",),
    "numpy": ("numpy",),
    "pathmoe": ("pathmoe",),
}

SLURM_VARS = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_NODELIST",
              "SLURM_CLUSTER_NAME", "SLURM_JOB_PARTITION")


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        res = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """The code the package runs from: git commit + dirty flag when it is a git checkout.

    `dirty` means tracked files differ from the commit, or the package directory holds untracked
    (new) files; untracked files elsewhere are ignored, since results and scratch files would
    otherwise mark every cluster checkout dirty. `commit` is null outside git
    or before the first commit; `version` is always the package version.
    """
    pkg_dir = Path(pathmoe.__file__).resolve().parent
    root = _git(["rev-parse", "--show-toplevel"], pkg_dir)
    out: dict[str, Any] = {"version": pathmoe.__version__, "git_root": root, "commit": None, "dirty": None}
    if root is None:
        return out
    out["commit"] = _git(["rev-parse", "--verify", "-q", "HEAD"], pkg_dir) or None
    tracked = _git(["status", "--porcelain", "--untracked-files=no"], pkg_dir)
    new_code = _git(["status", "--porcelain", "--untracked-files=all", "--", "."], pkg_dir)
    out["dirty"] = None if tracked is None or new_code is None else bool(tracked or new_code)
    return out


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that decide numerics, plus python itself."""
    versions: dict[str, str | None] = {}
    for key, dists in PACKAGES.items():
        versions[key] = None
        for dist in dists:
            try:
                versions[key] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    versions["python"] = platform.python_version()
    return versions


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


_SMI_GPU = re.compile(r"^GPU (\d+): (.+) \(UUID: (\S+)\)$")
_SMI_MIG = re.compile(r"^\s+MIG (\S+)\s+Device\s+\d+: \(UUID: (\S+)\)$")


def _driver_gpus() -> list[tuple[str | None, str, str]]:
    """(index, uuid, name) of every GPU and MIG instance the NVIDIA driver lists (`nvidia-smi -L`;
    a MIG instance has no index and is named like torch names it: "<GPU> MIG <profile>")."""
    try:
        res = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        res = None
    if res is not None and res.returncode == 0:
        devices: list[tuple[str | None, str, str]] = []
        gpu_name = ""
        for line in res.stdout.splitlines():
            if m := _SMI_GPU.match(line):
                gpu_name = m.group(2).strip()
                devices.append((m.group(1), m.group(3), gpu_name))
            elif m := _SMI_MIG.match(line):
                devices.append((None, m.group(2), f"{gpu_name} MIG {m.group(1)}"))
        return devices
    devices = []  # no nvidia-smi: the driver's per-GPU files (directories named by PCI bus id)
    for index, info in enumerate(sorted(Path("/proc/driver/nvidia/gpus").glob("*/information"))):
        try:
            fields = dict(line.split(":", 1) for line in info.read_text().splitlines() if ":" in line)
        except OSError:
            continue
        devices.append((str(index), fields.get("GPU UUID", "").strip(), fields.get("Model", "").strip()))
    return devices


def _gpu_names() -> list[str]:
    """Names of the GPUs this process may use: every GPU the driver lists, or with
    CUDA_VISIBLE_DEVICES the devices it names by index or (GPU or MIG) UUID; as in CUDA, an entry
    that names no device ends the list."""
    devices = _driver_gpus()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return [name for index, _, name in devices if index is not None]
    names = []
    for entry in (e.strip() for e in visible.split(",")):
        match = next((name for index, uuid, name in devices
                      if entry and (entry == index or uuid.startswith(entry))), None)
        if match is None:
            break
        names.append(match)
    return names


@functools.lru_cache(maxsize=1)
def hardware() -> dict[str, Any]:
    """Host, CPU, GPUs and the SLURM allocation (null outside SLURM)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    slurm = {k: os.environ[k] for k in SLURM_VARS if k in os.environ}
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "gpus": _gpu_names(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "slurm": slurm or None,
    }


def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return str(os.getuid())
