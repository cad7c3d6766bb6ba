"""One trainer per run directory: an exclusive `flock` on <run_dir>/train.lock while training.

A trainer orphaned by a killed Snakemake keeps running; `snakemake --unlock` and a rerun would start
a second one writing checkpoints into the same directory. With the lock, the second one fails at
once with a one-line error naming the holder (host and pid, written into the lock file). The
kernel drops the lock when the holder exits or dies (kill -9 included), so a requeued or restarted
job never finds a stale lock. Only rank 0 takes it; a process holding it may take it again
(a second `train()` call in the same process).
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

LOCK_NAME = "train.lock"
_held: dict[str, int] = {}  # resolved run dir -> open lock file descriptor


def hold_run_lock(run_dir: str | os.PathLike) -> None:
    """Take the run directory's trainer lock or raise ValueError naming who holds it."""
    key = str(Path(run_dir).resolve())
    if key in _held:
        return
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    path = Path(run_dir) / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "an unknown process"
        os.close(fd)
        raise ValueError(f"{run_dir} is being trained by {holder} (lock {path}); stop that trainer or wait "
                         "for it, one trainer per run directory") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}\n".encode(), 0)
    _held[key] = fd


def release_run_lock(run_dir: str | os.PathLike) -> None:
    fd = _held.pop(str(Path(run_dir).resolve()), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor drops the flock
