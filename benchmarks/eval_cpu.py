"""CPU evaluation throughput of the offline task suite through the real lm-eval harness.

    OMP_NUM_THREADS=1 python benchmarks/eval_cpu.py [--batch-sizes 1 8 32 64] [--threads 1]

Builds the built-in corpus and the offline tasks (offline_mc + offline_cloze) in a temp dir, then
scores the embedded-default `tiny` model (untrained: speed does not depend on the weights) with
lm-eval at several batch sizes. tokens/s counts every scored (context + continuation) token, as
lm-eval feeds them (truncated to the model's max length). Writes benchmarks/eval_cpu.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from pathmoe.io import atomic_write_text

TINY = {"d_model": 64, "n_layers": 8, "n_heads": 4, "n_kv_heads": 2, "n_experts": 8, "top_k": 2,
        "expert_hidden": 128, "max_seq_len": 128}  # configs/default.yaml, scale `tiny`


def scored_tokens(task_dir: Path, tokenizer, max_len: int) -> int:
    """Tokens lm-eval runs through the model for one pass over both offline tasks."""
    total = 0
    for line in (task_dir / "offline_mc.jsonl").read_text().splitlines():
        row = json.loads(line)
        ctx = len(tokenizer(row["context"])["input_ids"])
        total += sum(min(max_len, ctx + len(tokenizer(" " + c)["input_ids"])) for c in row["choices"])
    for line in (task_dir / "offline_cloze.jsonl").read_text().splitlines():
        row = json.loads(line)
        total += min(max_len, len(tokenizer(row["context"] + " " + row["target"])["input_ids"]))
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32, 64])
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).with_name("eval_cpu.md")))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from pathmoe.data import TokenShards, load_tokenizer, prepare_dataset
    from pathmoe.eval import build_offline_tasks, run_tasks
    from pathmoe.model import PathMoEConfig, PathMoEForCausalLM

    with tempfile.TemporaryDirectory(prefix="pathmoe-evalbench-") as work:
        data = Path(work) / "data"
        prepare_dataset({"source": {"kind": "builtin", "num_documents": 1000, "seed": 0},
                         "tokenizer": {"kind": "bpe", "vocab_size": 2048}, "validation_documents": 200,
                         "num_workers": 1}, data)
        tokenizer = load_tokenizer(data / "tokenizer")
        torch.manual_seed(0)
        model = PathMoEForCausalLM(PathMoEConfig(vocab_size=TokenShards(data / "shards", "val").vocab_size, **TINY)).eval()
        tasks = build_offline_tasks(data, Path(work) / "tasks", seed=1234, n_examples=args.examples)
        n_tok = scored_tokens(tasks, tokenizer, TINY["max_seq_len"])
        rows, best = [], (0.0, None)
        run_tasks(model, tokenizer, ["offline_mc", "offline_cloze"], batch_size=8, include_path=tasks, limit=10)  # warm-up
        for bs in args.batch_sizes:
            t0 = time.perf_counter()
            run_tasks(model, tokenizer, ["offline_mc", "offline_cloze"], batch_size=bs, include_path=tasks)
            wall = time.perf_counter() - t0
            tps = n_tok / wall
            best = max(best, (tps, bs), key=lambda x: x[0])
            rows.append(f"| {bs} | {wall:.1f} | {tps:,.0f} |")
            print(rows[-1], flush=True)

    cmd = f"OMP_NUM_THREADS={args.threads} python benchmarks/eval_cpu.py --batch-sizes {' '.join(map(str, args.batch_sizes))} --threads {args.threads}"
    text = "\n".join([
        "# Evaluation throughput on CPU (offline task suite, real lm-eval harness)",
        "",
        f"Command: `{cmd}`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {args.threads} thread(s), torch {torch.__version__}, "
        f"Python {sys.version.split()[0]}.",
        f"Model: embedded-default `tiny` scale ({TINY}), vocab 2048. Suite: offline_mc + offline_cloze, "
        f"{args.examples} examples each = {5 * args.examples} loglikelihood requests, {n_tok:,} scored tokens per pass.",
        "Wall time covers the whole `run_tasks` call (task loading, tokenisation, forward passes, metrics).",
        f"Load average at the end: {os.getloadavg()[0]:.1f} (a shared machine: expect +-30% run to run).",
        "",
        "| lm-eval batch size | wall s | scored tokens/s |",
        "|---:|---:|---:|",
        *rows,
        "",
        f"Best: batch size {best[1]} at {best[0]:,.0f} tokens/s.",
        "",
    ])
    atomic_write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
