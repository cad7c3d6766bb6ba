"""Stopping training before the scheduler kills it, so the next job resumes and loses nothing.

A SLURM job is killed at its time limit, on preemption and on `scontrol requeue`; the steps since
the last periodic checkpoint would be lost. The trainer therefore stops at the next step boundary
when any rank sees one of:

- SIGUSR1: the scheduler's warning signal (`sbatch --signal=USR1@<seconds>` where the trainer is a
  job step of its own, e.g. a hand-written `srun pathmoe train` script);
- SIGTERM: what SLURM sends on preemption, requeue, scancel and at the time limit, `KillWait`
  seconds (default 30) before SIGKILL;
- the job's remaining time (read once at start from `squeue -o %L`) below `margin_s`. This is
  what the Snakemake profile relies on: under the slurm executor the trainer runs below Snakemake's
  own job-step process, which a job-wide SIGUSR1 would end (it does not handle the signal).

Stopping writes a checkpoint at that step and raises TrainingStopped; `pathmoe train` then asks
SLURM to requeue the job (same job id, so Snakemake keeps waiting on it) and the next start resumes
bit for bit from the checkpoint (pathmoe.train.checkpoint).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any

# `pathmoe train`'s exit status after a stop without a requeue (EX_TEMPFAIL: run it again)
EXIT_STOPPED = 75
# the longest a requeued job waits for SLURM to end it before exiting by itself
REQUEUE_WAIT_S = 600


class TrainingStopped(RuntimeError):
    """Training stopped early (signal or time limit) after writing a checkpoint at `step`."""

    def __init__(self, step: int, reason: str) -> None:
        super().__init__(f"training stopped at step {step} ({reason}); checkpoint step_{step} written, "
                         "the next start resumes from it")
        self.step, self.reason = step, reason


def parse_time_left(text: str) -> float | None:
    """Seconds in squeue's %L ('[days-]hours:minutes:seconds', 'MM:SS'); None when unlimited or unknown."""
    m = re.fullmatch(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)", text.strip())
    if not m:
        return None
    days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def slurm_time_left(env: dict[str, str] | None = None) -> float | None:
    """Seconds until this SLURM job's time limit (None outside SLURM, unlimited, or squeue failing)."""
    env = os.environ if env is None else env
    job = env.get("SLURM_JOB_ID")
    if not job:
        return None
    try:
        out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_time_left(out.stdout.splitlines()[0]) if out.returncode == 0 and out.stdout.strip() else None


class StopRequest:
    """Signal handlers + the job's deadline; `poll()` says whether to stop at this step boundary."""

    SIGNALS = (signal.SIGUSR1, signal.SIGTERM)

    def __init__(self, margin_s: float | None, time_left_s: float | None = None) -> None:
        self.reason: str | None = None
        left = slurm_time_left() if time_left_s is None and margin_s is not None else time_left_s
        self.deadline = time.monotonic() + left - margin_s if left is not None and margin_s is not None else None
        self._previous: dict[int, Any] = {}

    def install(self) -> StopRequest:
        if threading.current_thread() is not threading.main_thread():
            return self  # handlers can only be set from the main thread; the deadline still applies
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.reason = signal.Signals(signum).name

    def local_reason(self) -> str | None:
        if self.reason is None and self.deadline is not None and time.monotonic() >= self.deadline:
            self.reason = "time limit near"
        return self.reason

    def poll(self, device: Any) -> bool:
        """True on every rank when any rank must stop (one tiny all-reduce per step with several ranks)."""
        import torch
        import torch.distributed as dist

        stop = self.local_reason() is not None
        if dist.is_initialized() and dist.get_world_size() > 1:
            flag = torch.tensor([1.0 if stop else 0.0], device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop = bool(flag.item() > 0)
            if stop and self.reason is None:
                self.reason = "another rank stopped"
        return stop


def requeue_self(env: dict[str, str] | None = None) -> bool:
    """Ask SLURM to requeue this job (`scontrol requeue $SLURM_JOB_ID`); True when it accepted.

    Only the batch step's rank 0 asks (SLURM_PROCID 0 or unset). After an accepted requeue SLURM
    ends the job itself: wait for that (default SIGTERM action) so the job's exit status cannot race it.
    """
    env = os.environ if env is None else env
    job = env.get("SLURM_JOB_ID")
    if not job or env.get("SLURM_PROCID", "0") != "0" or env.get("RANK", "0") != "0":
        return False
    res = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    if res.returncode != 0:
        print(f"pathmoe train: scontrol requeue {job} failed ({res.stderr.strip()}); the job ends with exit "
              f"status {EXIT_STOPPED} and the workflow's retries resubmit it", file=sys.stderr)
        return False
    print(f"pathmoe train: requeued SLURM job {job}; it resumes from the checkpoint when it starts again",
          file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    time.sleep(REQUEUE_WAIT_S)
    return True
