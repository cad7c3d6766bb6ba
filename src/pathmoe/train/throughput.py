"""Training throughput of configured runs through the real training path (issue: 2x the paper).

Each benchmarked run is the experiment's own run spec (model, precision, ZeRO, sequence length,
dispatch) trained for a few steps on synthetic tokens with one micro-batch per step by
`pathmoe train` in a process of its own, so the number is what training achieves per GPU and each
run's peak memory and compile caches are its own; tokens/s excludes the first warm-up steps.
MFU uses pathmoe.flops (6 x matmul params per token + attention, PaLM convention).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from pathmoe.config import Experiment, deep_merge
from pathmoe.cost import run_vocab_size
from pathmoe.flops import mfu, train_flops_per_token
from pathmoe.io import atomic_write_json, read_json


def bench_throughput(exp: Experiment, runs: list[str], work_dir: str | Path, steps: int = 20,
                     micro_batch_size: int | None = None, device: str | None = None,
                     peak_flops: float | None = None,
                     train_overrides: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Train each run of `runs` for `steps` steps from scratch; return one result row per run.

    The model is the run's own, with the vocabulary training would use (`run_vocab_size`). MFU is
    against `peak_flops`, by default the experiment's `cost.gpu_flops` (what `pathmoe plan` uses).
    `train_overrides` (e.g. {"compile": True}) replace the runs' own train keys, for sweeps.
    """
    peak_flops = peak_flops or exp.cost["gpu_flops"]
    from pathmoe.data.synthetic import write_synthetic_shards

    unknown = [r for r in runs if r not in exp.runs]
    if unknown:
        raise ValueError(f"bench: unknown run(s) {unknown}; runs of {exp.name}: {', '.join(exp.runs)}")
    work = Path(work_dir)
    rows = []
    for run in runs:
        rc = exp.run_config(run)
        micro = micro_batch_size or rc["train"]["micro_batch_size"]
        seq_len = rc["train"]["seq_len"]
        vocab = run_vocab_size(exp, run)
        data_dir = work / f"data_v{vocab}"
        if not (data_dir / "shards" / "index.json").is_file():
            write_synthetic_shards(data_dir, vocab, train_tokens=max(4 * micro * (seq_len + 1), 1 << 20))
        run_dir = work / "runs" / run
        shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run: resuming would skip the timing
        overrides = {"steps": steps, "micro_batch_size": micro, "global_batch_size": micro, "warmup_steps": 1,
                     "log_every": steps, "ckpt_every": 10**9, "export_every": 10**9, "keep_exports": 1}
        if device:
            overrides["device"] = device
        overrides.update(train_overrides or {})
        rc = {**rc, "run_dir": str(run_dir), "data_dir": str(data_dir), "init_from": None,
              "model": {**rc["model"], "vocab_size": vocab}, "train": deep_merge(rc["train"], overrides)}
        summary = _train_in_subprocess(rc, work / "runs" / f"{run}.json")
        tps = summary["tokens_per_s_per_gpu"]
        train_spec = rc["train"]
        rows.append({"run": run, "variant": exp.runs[run].variant, "device": summary["device"],
                     "precision": summary["precision"], "micro_batch_size": micro, "seq_len": seq_len,
                     "compile": bool(train_spec.get("compile", False)),
                     "activation_checkpointing": bool(train_spec.get("activation_checkpointing", False)),
                     "steps": steps, "tokens_per_s_per_gpu": tps, "peak_mem_gib": summary["peak_mem_gib"],
                     "flops_per_token": train_flops_per_token(rc["model"], seq_len),
                     "mfu": mfu(rc["model"], seq_len, tps, peak_flops)})
        shutil.rmtree(run_dir, ignore_errors=True)
    return rows


def _train_in_subprocess(rc: dict[str, Any], spec_path: Path) -> dict[str, Any]:
    """`pathmoe train --run-config spec_path` in a fresh process; its train_summary.json."""
    atomic_write_json(spec_path, rc)
    proc = subprocess.run([sys.executable, "-m", "pathmoe.cli", "train", "--run-config", str(spec_path)],
                          stdout=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"bench: training {rc['run']} failed with exit code {proc.returncode} (see stderr above)")
    return read_json(Path(rc["run_dir"]) / "train_summary.json")


def format_markdown(rows: list[dict[str, Any]], command: str, device_name: str, peak_flops: float) -> str:
    """The benchmark record committed under benchmarks/: command, device, numbers, ratios."""
    lines = [f"Command: `{command}`", "", f"Device: {device_name}; MFU against {peak_flops / 1e12:.0f} TFLOP/s.", "",
             "| run | precision | compile | act. ckpt | micro-batch x seq | tokens/s/GPU | MFU | peak memory (GiB) |",
             "|---|---|---|---|---|---:|---:|---:|"]
    yes_no = {True: "yes", False: "no"}
    for r in rows:
        lines.append(f"| {r['run']} | {r['precision']} | {yes_no[r['compile']]} | "
                     f"{yes_no[r['activation_checkpointing']]} | {r['micro_batch_size']} x {r['seq_len']} | "
                     f"{r['tokens_per_s_per_gpu']:,.0f} | {r['mfu']:.1%} | {r['peak_mem_gib']:.2f} |")
    if len(rows) > 1 and rows[0]["tokens_per_s_per_gpu"] > 0:
        base = rows[0]
        for r in rows[1:]:
            lines.append("")
            lines.append(f"{r['run']} / {base['run']} throughput ratio: "
                         f"{r['tokens_per_s_per_gpu'] / base['tokens_per_s_per_gpu']:.3f}")
    return "\n".join(lines) + "\n"
