"""All three data steps in order; each skips what an earlier run with the same inputs finished."""

from __future__ import annotations

import os
from typing import Any

from pathmoe.data.config import validate_dataset_config
from pathmoe.data.shards import tokenize_to_shards
from pathmoe.data.sources import fetch_documents
from pathmoe.data.tokenizer import build_tokenizer
from pathmoe.hub import RevisionLock


def prepare_dataset(cfg: dict[str, Any], out_dir: str | os.PathLike, lock: RevisionLock | None = None) -> dict[str, Any]:
    """fetch -> tokenizer -> shards for one dataset under `out_dir` (= <out>/data/<dataset>); hub
    downloads at the commits `lock` pins (pathmoe.hub).

    Returns the shard index (index.json's content).
    """
    cfg = validate_dataset_config(cfg)
    fetch_documents(cfg, out_dir, lock)
    build_tokenizer(cfg, out_dir, lock)
    return tokenize_to_shards(cfg, out_dir)
