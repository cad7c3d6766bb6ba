"""Content fingerprints that decide whether a data step's existing output can be reused."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from pathmoe.audit.hashing import HashCache, config_hash
from pathmoe.io import read_json

# One process (e.g. `pathmoe data prepare`) asks for the raw files' sha256 at every step: fetch's
# manifest, the tokenizer stamp, the shard fingerprint. Memoised by (path, size, mtime_ns), each
# raw file is read once per process instead of once per step (hundreds of GB for FineWeb).
_RAW_HASHES = HashCache()


def fingerprint(obj: Any) -> str:
    """sha256 of the canonical JSON of `obj`: equal configs give equal fingerprints."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def raw_sha256(path: str | os.PathLike) -> str:
    """sha256 of a raw/*.jsonl file, computed at most once per process while the file is unchanged."""
    return _RAW_HASHES.file(Path(path))


def dataset_identity(data_dir: str | os.PathLike) -> str:
    """sha256 naming the exact token data of a built dataset (`<out>/data/<dataset>`).

    It is the hash of shards/index.json, which holds everything the tokens depend on: its
    `fingerprint` covers tokenizer.json, the EOS id, dtype, shard size and both raw files, its
    `sources` list every local source file's sha256, and its entries every shard's sha256. A run
    records it beside its checkpoints; any change to the corpus, the tokenizer or the shards
    changes it. Reading one small JSON file, it is cheap enough for every (re)start of every rank.
    """
    index = Path(data_dir) / "shards" / "index.json"
    if not index.is_file():
        raise FileNotFoundError(f"no shard index {index}; run `pathmoe data tokenize` first")
    return config_hash(read_json(index))
