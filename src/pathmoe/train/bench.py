"""`bench_train`: tokens/s and peak memory of the embedded-default tiny model through `train`.

It runs the real training path (DeepSpeed engine, sampler, logging, exports), not a bare
forward/backward loop, so the number is what a CPU smoke run of the pipeline actually gets.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

# The embedded default's `tiny` scale (configs/default.yaml), vocab from the built-in tokenizer.
TINY_MODEL = {"vocab_size": None, "d_model": 64, "n_layers": 8, "n_heads": 4, "n_kv_heads": 2, "n_experts": 8,
              "top_k": 2, "expert_hidden": 128, "max_seq_len": 128}
BENCH_DATASET = {"source": {"kind": "builtin", "num_documents": 600, "seed": 0},
                 "tokenizer": {"kind": "bpe", "vocab_size": 2048}, "validation_documents": 20, "num_workers": 1}


def bench_train(work_dir: str | Path, steps: int = 20, micro_batch_size: int = 8, seq_len: int = 128,
                model: dict[str, Any] | None = None, threads: int | None = 1, name: str = "bench") -> dict[str, Any]:
    """Train `steps` steps of the tiny model from scratch in work_dir/runs/<name>; return the summary.

    The built-in dataset is prepared once under work_dir/data/builtin and reused.
    """
    from pathmoe.data import prepare_dataset
    from pathmoe.train.loop import train

    work = Path(work_dir)
    data_dir = work / "data" / "builtin"
    if not (data_dir / "shards" / "index.json").is_file():
        prepare_dataset(dict(BENCH_DATASET), data_dir)
    run_dir = work / "runs" / name
    shutil.rmtree(run_dir, ignore_errors=True)  # always a fresh run: resume would skip the timing
    rc = {"run": name, "seed": 0, "run_dir": str(run_dir), "data_dir": str(data_dir),
          "model": {**TINY_MODEL, **(model or {})},
          "train": {"steps": steps, "micro_batch_size": micro_batch_size, "global_batch_size": micro_batch_size,
                    "seq_len": seq_len, "lr": 3e-3, "warmup_steps": 2, "device": "cpu", "log_every": 10,
                    "ckpt_every": 10**6, "export_every": 10**6, "keep_exports": 1, "threads": threads}}
    return train(rc)
