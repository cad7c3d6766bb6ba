"""Content fingerprints that decide whether a data step's existing output can be reused."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from pathmoe.audit.hashing import HashCache

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
