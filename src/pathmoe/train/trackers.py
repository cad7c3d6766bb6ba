"""Experiment trackers (`train.trackers`): TensorBoard, Weights & Biases and a CSV file.

metrics.jsonl stays the record every later stage reads; trackers mirror its records to the tools
researchers watch runs in. Each is written through its own client, rank 0 only, flushed at every
logged step so a killed job loses nothing it logged. On resume from step S the records after S are
dropped first, as metrics.jsonl drops them: TensorBoard through `SummaryWriter(purge_step=S + 1)`,
the CSV by rewriting it, and Weights & Biases by resuming the same run id (it drops, with a
warning, steps below the last one it holds; a bit-exact resume logs the same values for them).
"""

from __future__ import annotations

import csv
import os
import secrets
from pathlib import Path
from typing import Any, Iterator

from pathmoe.io import atomic_write_text
from pathmoe.tracker_rules import check_trackers

TENSORBOARD_DIR = "tensorboard"
WANDB_DIR = "wandb"
CSV_FILE = "metrics.csv"
TRACKER_FILES = (TENSORBOARD_DIR, WANDB_DIR, CSV_FILE)  # what the trackers write under the run dir
WANDB_ID_FILE = "run_id"  # <run_dir>/wandb/run_id: the W&B run this directory's training logs to


def flat_scalars(rec: dict[str, Any]) -> Iterator[tuple[str, float]]:
    """(name, value) of every number of a metrics record except `step`; per-layer lists as `key/<layer>`."""
    for key, value in rec.items():
        if key == "step" or isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            yield key, value
        elif isinstance(value, list):
            for i, v in enumerate(value):
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    yield f"{key}/{i}", v


class _TensorBoard:
    def __init__(self, run_dir: Path, start: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: TensorBoard hides every event at step >= start + 1 written before this session
        self.writer = SummaryWriter(str(run_dir / TENSORBOARD_DIR), purge_step=start + 1)

    def log(self, rec: dict[str, Any]) -> None:
        for key, value in flat_scalars(rec):
            self.writer.add_scalar(f"train/{key}", value, rec["step"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class _Csv:
    """metrics.csv: one row per logged step, one column per scalar (per-layer lists as `key/<layer>`)."""

    def __init__(self, run_dir: Path, start: int) -> None:
        self.path = run_dir / CSV_FILE
        self.columns: list[str] | None = None
        if self.path.exists():
            with open(self.path, newline="") as f:
                rows = list(csv.reader(f))
            if rows:
                self.columns = rows[0]
                kept = [r for r in rows[1:] if len(r) == len(self.columns) and _int(r[0]) is not None
                        and _int(r[0]) <= start]  # a torn last row is dropped too
                atomic_write_text(self.path, _csv_text([self.columns, *kept]))
        self.fh = open(self.path, "a", newline="")

    def log(self, rec: dict[str, Any]) -> None:
        values = dict(flat_scalars(rec))
        if self.columns is None:
            self.columns = ["step", *values]
            csv.writer(self.fh).writerow(self.columns)
        csv.writer(self.fh).writerow([rec["step"], *(values.get(c, "") for c in self.columns[1:])])
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _csv_text(rows: list[list[str]]) -> str:
    import io

    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue()


class _Wandb:
    """One W&B run per training of a run directory (its id kept in wandb/run_id); project from
    $WANDB_PROJECT (default `pathmoe`), mode from $WANDB_MODE (e.g. `offline` on nodes without internet)."""

    def __init__(self, run_dir: Path, run_config: dict[str, Any]) -> None:
        import wandb

        wdir = run_dir / WANDB_DIR
        wdir.mkdir(parents=True, exist_ok=True)
        id_file = wdir / WANDB_ID_FILE
        if not id_file.exists():
            atomic_write_text(id_file, secrets.token_hex(8) + "\n")
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "pathmoe"), id=id_file.read_text().strip(),
                              name=run_config.get("run", run_dir.name), dir=str(wdir), resume="allow",
                              config={k: run_config.get(k) for k in ("model", "train", "seed", "dataset", "variant")})

    def log(self, rec: dict[str, Any]) -> None:
        self.run.log({f"train/{k}": v for k, v in flat_scalars(rec)}, step=rec["step"])

    def close(self) -> None:
        self.run.finish()


class Trackers:
    """The run's trackers (none on ranks > 0); `log(record)` after metrics.jsonl, `close()` at the end."""

    def __init__(self, names: Any, run_dir: Path, run_config: dict[str, Any], start: int, rank: int) -> None:
        names = check_trackers(list(names))
        self.clients: list[Any] = []
        if rank != 0:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            if name == "tensorboard":
                self.clients.append(_TensorBoard(run_dir, start))
            elif name == "csv":
                self.clients.append(_Csv(run_dir, start))
            else:
                self.clients.append(_Wandb(run_dir, run_config))

    def log(self, rec: dict[str, Any]) -> None:
        for client in self.clients:
            client.log(rec)

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.clients = []
