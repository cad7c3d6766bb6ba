"""Analysis speed benchmark -> benchmarks/analysis_speed.md.

1. Table 4 metrics (`path_metrics`) on synthetic traces of the paper's size: 7.18M tokens x 24
   layers x top-4 over 16 experts (budget: <= 10 s on 2 CPU cores, bounded memory). The synthetic
   routing is PathB4-like: within a block of 4 layers a token keeps its expert with probability
   0.85, so paths repeat as in a trained model instead of being all distinct.
2. Fig 7 consistency metrics on the same traces (no budget; recorded for planning).
3. The whole suite of one smoke checkpoint (`run_all`: traces, six analyses, robustness at 5 p's)
   for a random model of the default config's `tiny` scale on 16384 val tokens (budget: < 60 s).
4. Fig 5's token labelling (`word_categories`) at the paper's size: the smoke BPE tokenizer's ids
   repeated to 7.18M tokens (no budget; it is the only per-token step of the specialization record).

Run: `OMP_NUM_THREADS=1 python benchmarks/analysis_speed.py` (from the repository root).
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

TOKENS, LAYERS, TOP_K, EXPERTS = 7_180_000, 24, 4, 16
OUT = Path(__file__).with_name("analysis_speed.md")


def synthetic_experts(seed: int = 0) -> np.ndarray:
    """[TOKENS, LAYERS, TOP_K] int16: distinct experts per row, top-1 sticky within blocks of 4."""
    rng = np.random.default_rng(seed)
    experts = np.empty((TOKENS, LAYERS, TOP_K), dtype=np.int16)
    top1 = rng.integers(0, EXPERTS, TOKENS, dtype=np.int16)
    offsets = np.array([[1, 2, 3], [1, 5, 9], [3, 7, 11], [2, 4, 8]], dtype=np.int16)
    for layer in range(LAYERS):
        if layer % 4 == 0 or layer == 0:
            top1 = rng.integers(0, EXPERTS, TOKENS, dtype=np.int16)
        else:
            switch = rng.random(TOKENS, dtype=np.float32) < 0.15
            top1 = np.where(switch, rng.integers(0, EXPERTS, TOKENS, dtype=np.int16), top1)
        experts[:, layer, 0] = top1
        off = offsets[rng.integers(0, len(offsets), TOKENS)]  # [TOKENS, 3] distinct non-zero offsets
        experts[:, layer, 1:] = (top1[:, None] + off) % EXPERTS
    return experts


def timed(fn, *args, **kwargs):
    """(result, wall seconds, CPU seconds of this process, peak MiB of new allocations during the call).

    CPU seconds are reported beside wall seconds because the cores are shared: under contention
    wall time overstates what the code needs, CPU time does not.
    """
    tracemalloc.start()
    start, cpu = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, seconds, cpu, peak


def smoke_suite(tmp: Path) -> tuple[dict[str, float], object, np.ndarray]:
    """Random tiny-scale checkpoint + synthetic BPE shards -> (run_all timings, tokenizer, val ids)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from pathmoe.analysis.suite import run_all
    from pathmoe.io import atomic_write_json, sha256_file
    from pathmoe.model import PathMoEConfig, PathMoEForCausalLM

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    rng = np.random.default_rng(0)
    words = ["the", "said", "John", "minister", "quickly", "Monday", "running", "and", "3", ".", ",", "American",
             "happiness", "player", "in", "she", "many", "good", "London", "1st", "however", "recently"]
    text = " ".join(rng.choice(words, 60_000))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([text], trainers.BpeTrainer(vocab_size=2048, special_tokens=["<|endoftext|>"],
                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    ids = np.array(tok.encode(text).ids, dtype=np.uint16)
    shards = tmp / "data" / "shards"
    shards.mkdir(parents=True)
    ids.tofile(shards / "val_00000.bin")
    split = [{"file": "val_00000.bin", "num_tokens": int(ids.size), "sha256": sha256_file(shards / "val_00000.bin")}]
    atomic_write_json(shards / "index.json", {"dtype": "uint16", "vocab_size": 2048, "eos_id": 0,
                                              "tokenizer": "bench", "splits": {"val": split}})
    cfg = PathMoEConfig(vocab_size=2048, d_model=64, n_layers=8, n_heads=4, n_kv_heads=2, n_experts=8, top_k=2,
                        expert_hidden=128, max_seq_len=128)
    ckpt = tmp / "ckpt"
    torch.manual_seed(0)
    PathMoEForCausalLM(cfg).save_pretrained(ckpt)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")
    hf_tok.save_pretrained(ckpt)
    start, cpu = time.perf_counter(), time.process_time()
    timings = run_all(ckpt, shards, tmp / "analysis", num_tokens=16384, seq_len=128, batch_size=32, device="cpu")
    timings["total"] = time.perf_counter() - start
    timings["total_cpu"] = time.process_time() - cpu
    return timings, hf_tok, ids


def main() -> int:
    from pathmoe.analysis.consistency import consistency_metrics
    from pathmoe.analysis.paths import path_metrics
    from pathmoe.analysis.specialization import word_categories

    load_before = os.getloadavg()
    experts = synthetic_experts()
    table4, t4_s, t4_cpu, t4_mib = timed(path_metrics, experts[:, :, 0])
    _, cons_s, cons_cpu, cons_mib = timed(consistency_metrics, experts, EXPERTS)
    del experts
    with tempfile.TemporaryDirectory() as tmp:
        smoke, tokenizer, ids = smoke_suite(Path(tmp))
    _, wc_s, wc_cpu, wc_mib = timed(word_categories, np.resize(ids, TOKENS), tokenizer)
    load_after = os.getloadavg()
    cmd = "OMP_NUM_THREADS=1 python benchmarks/analysis_speed.py"
    lines = [
        "# Analysis speed", "",
        f"Command: `{cmd}` (writes this file). Machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU cores, 1-minute load average {load_before[0]:.2f} before and "
        f"{load_after[0]:.2f} after the run, Python {sys.version.split()[0]}, "
        f"numpy {np.__version__}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}.", "",
        "Peak MiB = peak of new allocations during the call (tracemalloc), excluding the input traces "
        f"({TOKENS * LAYERS * TOP_K * 2 / 2**20:.0f} MiB of int16 experts).", "",
        "| step | size | wall s | CPU s | peak MiB | budget |", "|---|---|---|---|---|---|",
        f"| Table 4 (`path_metrics`) | {TOKENS:,} tok x {LAYERS} layers, top-1 of top-{TOP_K}, {EXPERTS} experts "
        f"| {t4_s:.2f} | {t4_cpu:.2f} | {t4_mib:.0f} | <= 10 s |",
        f"| Fig 7 (`consistency_metrics`) | same traces, top-{TOP_K} sets | {cons_s:.2f} | {cons_cpu:.2f} "
        f"| {cons_mib:.0f} | - |",
        f"| Fig 5 labels (`word_categories`) | {TOKENS:,} tokens, {len(np.unique(ids)):,} distinct ids "
        f"(smoke BPE) | {wc_s:.2f} | {wc_cpu:.2f} | {wc_mib:.0f} | - |",
        f"| smoke suite (`run_all`) total | tiny scale (8 layers, 8 experts, top-2), 16,384 val tokens, "
        f"5 p values | {smoke['total']:.2f} | {smoke['total_cpu']:.2f} | - | < 60 s |",
    ]
    lines += [f"| - smoke `{k}` | | {v:.2f} | | | |" for k, v in smoke.items() if not k.startswith("total")]
    lines += ["", f"Synthetic Table 4 values: H = {table4['routing_entropy_bits']:.2f} bits, "
              f"{table4['unique_paths']:,} unique paths, consecutive-layer correlation "
              f"{table4['consecutive_layer_correlation']:.3f}.", ""]
    from pathmoe.io import atomic_write_text

    atomic_write_text(OUT, "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
