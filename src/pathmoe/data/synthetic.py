"""Synthetic token shards: uniform random tokens in the shard format of `tokenize_to_shards`.

Throughput benchmarks at the paper's scale need data the size of its vocabulary on a GPU node that
may have no corpus and no hub access; token values do not change the cost of a training step.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pathmoe.data.shards import resolve_dtype
from pathmoe.io import atomic_path, atomic_write_json, sha256_file


def write_synthetic_shards(data_dir: str | os.PathLike, vocab_size: int, train_tokens: int,
                           val_tokens: int = 65_536, seed: int = 0) -> Path:
    """Write <data_dir>/shards/{train,val}_00000.bin + index.json; return the index path."""
    if vocab_size < 2 or train_tokens < 1 or val_tokens < 1:
        raise ValueError(f"synthetic shards: vocab_size={vocab_size}, train_tokens={train_tokens}, "
                         f"val_tokens={val_tokens}; all must be positive (vocab_size >= 2)")
    sdir = Path(data_dir) / "shards"
    dtype = resolve_dtype("auto", vocab_size)
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in (("train", train_tokens), ("val", val_tokens)):
        name = f"{split}_00000.bin"
        with atomic_path(sdir / name) as tmp:
            rng.integers(1, vocab_size, size=n, dtype=np.int64).astype(dtype).tofile(tmp)
        splits[split] = [{"file": name, "num_tokens": n, "sha256": sha256_file(sdir / name)}]
    index = {"dtype": dtype, "vocab_size": vocab_size, "eos_id": 0, "tokenizer": "synthetic",
             "splits": splits, "num_tokens": {s: e[0]["num_tokens"] for s, e in splits.items()}}
    atomic_write_json(sdir / "index.json", index)
    return sdir / "index.json"
