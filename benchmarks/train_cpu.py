"""CPU training throughput of the embedded-default tiny model through the real DeepSpeed path.

    OMP_NUM_THREADS=1 python benchmarks/train_cpu.py [--steps 30] [--threads 1]

Writes benchmarks/train_cpu.md (command, machine, tokens/s and peak memory per router variant).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

import torch

from pathmoe.io import atomic_write_text
from pathmoe.train.bench import TINY_MODEL, bench_train

VARIANTS = {"indep (linear B1, LBL 0.01)": {"router": "linear", "block_size": 1, "lbl_coef": 0.01},
            "pathb4 (linear B4)": {"router": "linear", "block_size": 4, "lbl_coef": 0.0},
            "recurrent": {"router": "recurrent", "lbl_coef": 0.01}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--micro-batch-size", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).with_name("train_cpu.md")))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="pathmoe-bench-") as work:
        for label, model in VARIANTS.items():
            s = bench_train(work, args.steps, args.micro_batch_size, args.seq_len, model, args.threads,
                            name=model["router"] + str(model.get("block_size", 1)))
            rows.append(f"| {label} | {s['tokens_per_s_per_gpu']:.0f} | {s['peak_mem_gib']:.2f} | {s['final_loss']:.3f} |")
            print(rows[-1], flush=True)
    cmd = "OMP_NUM_THREADS=1 python benchmarks/train_cpu.py " + " ".join(sys.argv[1:])
    text = "\n".join([
        "# CPU training throughput (embedded-default tiny model)", "",
        f"Command: `{cmd.strip()}`", "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores visible "
        f"(shared), {args.threads} torch thread(s); torch {torch.__version__}; one process, DeepSpeed engine, "
        "gloo, fp32, ZeRO 0.", "",
        f"Model: {TINY_MODEL} (vocab 2048 from the built-in BPE tokenizer); micro-batch {args.micro_batch_size} = "
        f"global batch, seq_len {args.seq_len}, {args.steps} steps, tokens/s over the steps after the first 2.", "",
        "| variant | tokens/s (per process) | peak RSS GiB | loss at last step |", "|---|---:|---:|---:|",
        *rows, "",
        "Peak memory on CPU is the process's peak resident set size (torch + DeepSpeed + tokenizer "
        "libraries included), not tensor memory, and it only grows within the benchmark process (the variants "
        "run one after another in it); on CUDA `train` reports torch.cuda.max_memory_allocated. The machine "
        "is shared, so tokens/s varies by tens of percent from run to run.", ""])
    atomic_write_text(args.out, text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
