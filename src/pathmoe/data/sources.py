"""Document sources (built-in grammar, local files, Hugging Face hub) and the raw/ split.

`fetch_documents` streams any source into raw/train.jsonl + raw/val.jsonl ({"text": ...} per line).
The held-out set is `validation_documents` documents picked by a seeded sample over the whole
stream, so it is an unbiased draw (not just the first or last documents) and the same config
always picks the same ones. Streaming goes through a temporary file first, so memory stays flat
even for millions of hub documents.
"""

from __future__ import annotations

import glob
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any, Iterator

from tqdm import tqdm

from pathmoe.data.builtin_corpus import generate_documents
from pathmoe.data.config import validate_dataset_config
from pathmoe.data.fingerprint import fingerprint, raw_sha256
from pathmoe.io import atomic_path, atomic_write_json, read_json

LOCAL_SUFFIXES = (".txt", ".jsonl", ".parquet")


def expand_local_paths(patterns: list[str]) -> list[Path]:
    """Every file matched by the patterns, in order (sorted within one glob); no duplicates."""
    files: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
        matches = [m for m in matches if os.path.isfile(m)]
        if not matches:
            raise FileNotFoundError(f"source.paths: no file matches {pattern!r}")
        for m in matches:
            if not m.endswith(LOCAL_SUFFIXES):
                raise ValueError(f"source.paths: {m!r} has an unsupported suffix; allowed: {list(LOCAL_SUFFIXES)}")
            if Path(m) not in files:
                files.append(Path(m))
    return files


def _read_txt(path: Path, mode: str) -> Iterator[str]:
    text = path.read_text(encoding="utf-8")
    if mode == "file":
        yield text
    else:  # paragraph: blank-line separated blocks
        yield from (p.strip() for p in text.replace("\r\n", "\n").split("\n\n"))


def _read_jsonl(path: Path, field: str) -> Iterator[str]:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if field not in row:
                raise ValueError(f"source.text_field {field!r} missing in {path}:{lineno}; keys there: {sorted(row)}")
            yield row[field]


def _read_parquet(path: Path, field: str) -> Iterator[str]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    if field not in pf.schema_arrow.names:
        raise ValueError(f"source.text_field {field!r} missing in {path}; columns: {pf.schema_arrow.names}")
    for batch in pf.iter_batches(columns=[field], batch_size=1024):
        yield from batch.column(0).to_pylist()


def _iter_local(src: dict[str, Any]) -> Iterator[str]:
    for path in expand_local_paths(src["paths"]):
        if path.suffix == ".txt":
            yield from _read_txt(path, src["txt_mode"])
        elif path.suffix == ".jsonl":
            yield from _read_jsonl(path, src["text_field"])
        else:
            yield from _read_parquet(path, src["text_field"])


def _iter_hf(src: dict[str, Any]) -> Iterator[str]:
    """Stream a hub dataset; only reached with a real config (never in tests)."""
    from datasets import load_dataset

    stream = load_dataset(src["path"], name=src["name"], split=src["split"], streaming=True)
    field, limit = src["text_field"], src["max_documents"]
    for i, row in enumerate(stream):
        if limit is not None and i >= limit:
            return
        if field not in row:
            raise ValueError(f"source.text_field {field!r} missing in {src['path']}; columns: {sorted(row)}")
        yield row[field]


def iter_documents(source: dict[str, Any]) -> Iterator[str]:
    """All non-empty documents of a validated `source` config, in a deterministic order."""
    kind = source["kind"]
    if kind == "builtin":
        docs: Iterator[str] = generate_documents(source["num_documents"], source["seed"])
    elif kind == "local":
        docs = _iter_local(source)
    elif kind == "hf":
        docs = _iter_hf(source)
    else:
        raise ValueError(f"source.kind {kind!r} is unknown; allowed: ['builtin', 'hf', 'local']")
    for doc in docs:
        if isinstance(doc, str) and doc.strip():
            yield doc


def raw_fingerprint(cfg: dict[str, Any]) -> str:
    return fingerprint({"source": cfg["source"], "validation_documents": cfg["validation_documents"]})


def raw_is_current(cfg: dict[str, Any], out_dir: str | os.PathLike) -> bool:
    """True when raw/ holds exactly what this config would write (so fetch can be skipped)."""
    raw = Path(out_dir) / "raw"
    try:
        man = read_json(raw / "manifest.json")
        return man["fingerprint"] == raw_fingerprint(cfg) and all(
            raw_sha256(raw / f"{s}.jsonl") == man[s]["sha256"] for s in ("train", "val"))
    except (OSError, KeyError, ValueError):
        return False


def fetch_documents(cfg: dict[str, Any], out_dir: str | os.PathLike) -> dict[str, Any]:
    """Write raw/train.jsonl and raw/val.jsonl under `out_dir` (the dataset's data dir).

    Skipped when raw/manifest.json says the same config already produced the current files.
    Returns the manifest: {"fingerprint", "num_documents", "train": {...}, "val": {...}}.
    """
    cfg = validate_dataset_config(cfg)
    raw = Path(out_dir) / "raw"
    if raw_is_current(cfg, out_dir):
        return read_json(raw / "manifest.json")
    raw.mkdir(parents=True, exist_ok=True)
    fd, scratch = tempfile.mkstemp(prefix=".all.", suffix=".jsonl.tmp", dir=raw)  # never moved into place
    try:
        n = 0
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for doc in tqdm(iter_documents(cfg["source"]), desc="fetch documents", unit="doc"):
                f.write(json.dumps({"text": doc}, ensure_ascii=False) + "\n")
                n += 1
        n_val = cfg["validation_documents"]
        if n_val >= n:
            raise ValueError(f"validation_documents ({n_val}) must be smaller than the number of documents the source gave ({n})")
        val_ids = set(random.Random(cfg["source"]["seed"]).sample(range(n), n_val))
        with atomic_path(raw / "train.jsonl") as t_train, atomic_path(raw / "val.jsonl") as t_val:
            with open(scratch, encoding="utf-8") as f, open(t_train, "w", encoding="utf-8") as ft, \
                    open(t_val, "w", encoding="utf-8") as fv:
                for i, line in enumerate(f):
                    (fv if i in val_ids else ft).write(line)
    finally:
        os.unlink(scratch)
    manifest = {
        "fingerprint": raw_fingerprint(cfg),
        "num_documents": n,
        "train": {"file": "train.jsonl", "num_documents": n - n_val, "sha256": raw_sha256(raw / "train.jsonl")},
        "val": {"file": "val.jsonl", "num_documents": n_val, "sha256": raw_sha256(raw / "val.jsonl")},
    }
    atomic_write_json(raw / "manifest.json", manifest)
    return manifest


def read_raw_documents(path: str | os.PathLike) -> Iterator[str]:
    """The texts of a raw/*.jsonl file, in order."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)["text"]
