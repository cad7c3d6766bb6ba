"""Read side of the token shards: memory-mapped, verified on load.

Training samples random windows of seq_len+1 tokens; `window` serves them across shard
boundaries without loading a split into memory. Verification on load (sizes always, sha256 unless
verify=False) turns a truncated or corrupted shard into an immediate error naming the file
instead of silently training on garbage.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pathmoe.io import read_json, sha256_file


class TokenShards:
    """The tokens of one split (`train` or `val`) of a shards/ directory.

    `verify=True` sha256-hashes every shard of the split on load, i.e. reads all of it (about 200 GB
    for the FineWeb train split). `tokenize` already hashed each shard when it wrote or reused it,
    so readers that open the split again and again (every training rank at every start) should
    pass `verify=False`: sizes are still checked, which catches truncated or missing shards.
    """

    def __init__(self, shards_dir: str | os.PathLike, split: str = "train", verify: bool = True):
        self.dir = Path(shards_dir)
        if not (self.dir / "index.json").is_file() and (self.dir / "shards" / "index.json").is_file():
            self.dir = self.dir / "shards"  # a data dir was passed
        index_path = self.dir / "index.json"
        if not index_path.is_file():
            raise FileNotFoundError(f"no shard index {index_path}; run `pathmoe data tokenize` first")
        self.index = read_json(index_path)
        if split not in self.index["splits"]:
            raise ValueError(f"split {split!r} not in {index_path}; available: {sorted(self.index['splits'])}")
        self.split = split
        self.dtype = np.dtype(self.index["dtype"]).newbyteorder("<")
        self.vocab_size: int = int(self.index["vocab_size"])
        self.eos_id: int = int(self.index["eos_id"])
        self._maps: list[np.ndarray] = []
        for entry in self.index["splits"][split]:
            path = self.dir / entry["file"]
            if not path.is_file():
                raise FileNotFoundError(f"token shard {path} listed in index.json is missing")
            expected = entry["num_tokens"] * self.dtype.itemsize
            if path.stat().st_size != expected:
                raise ValueError(f"token shard {path} is truncated or padded: {path.stat().st_size} bytes, index.json says {expected}")
            if verify and sha256_file(path) != entry["sha256"]:
                raise ValueError(f"token shard {path} is corrupted: sha256 differs from index.json")
            if entry["num_tokens"]:
                self._maps.append(np.memmap(path, dtype=self.dtype, mode="r"))
        sizes = [len(m) for m in self._maps]
        self._starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)  # [num_shards + 1]
        self.num_tokens: int = int(self._starts[-1])

    def __len__(self) -> int:
        return self.num_tokens

    @property
    def tokens(self) -> np.ndarray:
        """All tokens of the split as one 1-D array (a memmap when there is a single shard)."""
        if len(self._maps) == 1:
            return self._maps[0]
        if not self._maps:
            return np.empty(0, dtype=self.dtype)
        return np.concatenate(self._maps)

    def window(self, start: int, length: int) -> np.ndarray:
        """tokens[start:start+length] as an int64 array, read across shard boundaries."""
        if start < 0 or length < 0 or start + length > self.num_tokens:
            raise ValueError(f"window [{start}, {start + length}) outside the {self.num_tokens} tokens of split {self.split!r}")
        out = np.empty(length, dtype=np.int64)
        pos, k = start, int(np.searchsorted(self._starts, start, side="right")) - 1
        while pos < start + length:
            lo = pos - self._starts[k]
            n = min(len(self._maps[k]) - lo, start + length - pos)
            out[pos - start: pos - start + n] = self._maps[k][lo: lo + n]
            pos += n
            k += 1
        return out
