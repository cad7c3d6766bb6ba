"""Document sources (built-in grammar, local files, Hugging Face hub) and the raw/ split.

`fetch_documents` streams any source into raw/train.jsonl + raw/val.jsonl ({"text": ...} per line).
The held-out set is `validation_documents` documents picked by a seeded sample over the whole
stream, so it is an unbiased draw (not just the first or last documents) and the same config
always picks the same ones. Streaming goes through a temporary file first, so memory stays flat
even for millions of hub documents.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any, Iterator

from tqdm import tqdm

from pathmoe.data.builtin_corpus import generate_documents
from pathmoe.data.config import hub_downloads, validate_dataset_config
from pathmoe.data.fingerprint import fingerprint, raw_sha256
from pathmoe.data.paths import expand_local_paths
from pathmoe.hub import RevisionLock, pin_entry
from pathmoe.io import atomic_path, atomic_write_json, read_json

NUL = "\x00"


def _decode(data: bytes, path: Path, line: int | None = None) -> str:
    """UTF-8 text of `data` (a leading BOM dropped); a one-line error naming the file otherwise.

    `line` is the line number `data` starts at (jsonl reads line by line); for a whole file the
    line of the first bad byte is counted.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        where = line if line is not None else data.count(b"\n", 0, exc.start) + 1
        raise ValueError(f"source file {str(path)!r}: not UTF-8 text (byte 0x{data[exc.start]:02x} on line {where}); "
                         "convert it to UTF-8 or remove it from source.paths") from None
    if NUL in text:
        where = line if line is not None else text.count("\n", 0, text.index(NUL)) + 1
        raise ValueError(f"source file {str(path)!r}: contains NUL bytes (line {where}); it is a binary file, not text")
    return text


def split_paragraphs(text: str) -> list[str]:
    """Blocks of consecutive non-blank lines; a line holding only whitespace counts as blank."""
    paragraphs, block = [], []
    for line in text.splitlines():
        if line.strip():
            block.append(line)
        elif block:
            paragraphs.append("\n".join(block).strip())
            block = []
    if block:
        paragraphs.append("\n".join(block).strip())
    return paragraphs


def _read_txt(path: Path, mode: str) -> list[str]:
    text = _decode(path.read_bytes(), path)
    return [text] if mode == "file" else split_paragraphs(text)


def _as_text(value: Any, path: Path, where: str, field: str) -> str | None:
    """A document's text from a jsonl row / parquet cell: None stays None (dropped), non-text is an error."""
    if value is None or isinstance(value, str):
        if value is not None and NUL in value:
            raise ValueError(f"source file {str(path)!r}: {where} holds a NUL character in {field!r}; binary data, not text")
        return value
    raise ValueError(f"source file {str(path)!r}: {where} source.text_field {field!r} holds "
                     f"{type(value).__name__}, not text")


def _read_jsonl(path: Path, field: str) -> Iterator[str | None]:
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            line = _decode(raw, path, lineno)
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"source file {str(path)!r}: line {lineno} is not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"source file {str(path)!r}: line {lineno} is a JSON {type(row).__name__}, not an object")
            if field not in row:
                raise ValueError(f"source.text_field {field!r} missing in {path}:{lineno}; keys there: {sorted(row)}")
            yield _as_text(row[field], path, f"line {lineno}", field)


def _read_parquet(path: Path, field: str) -> Iterator[str | None]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"source file {str(path)!r}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    if field not in pf.schema_arrow.names:
        raise ValueError(f"source.text_field {field!r} missing in {path}; columns: {pf.schema_arrow.names}")
    row = 0
    for batch in pf.iter_batches(columns=[field], batch_size=1024):
        for value in batch.column(0).to_pylist():
            row += 1
            yield _as_text(value, path, f"row {row}", field)


def _local_documents(path: Path, src: dict[str, Any]) -> Iterator[str]:
    """The non-blank documents of one local file; a file that yields none is an error naming it."""
    if path.suffix == ".txt":
        docs: Any = _read_txt(path, src["txt_mode"])
    elif path.suffix == ".jsonl":
        docs = _read_jsonl(path, src["text_field"])
    else:
        docs = _read_parquet(path, src["text_field"])
    n = 0
    for doc in docs:
        if doc is not None and doc.strip():
            n += 1
            yield doc
    if n == 0:
        raise ValueError(f"source file {str(path)!r}: holds no text (every document is empty or whitespace)")


def _iter_local(src: dict[str, Any]) -> Iterator[str]:
    for path in expand_local_paths(src["paths"]):
        yield from _local_documents(path, src)


def _iter_hf(src: dict[str, Any], commit: str | None) -> Iterator[str]:
    """Stream a hub dataset at `commit` (the pinned revision; None: `source.revision` as written)."""
    from datasets import load_dataset

    stream = load_dataset(src["path"], name=src["name"], split=src["split"], revision=commit or src.get("revision"),
                          streaming=True)
    field, limit = src["text_field"], src["max_documents"]
    for i, row in enumerate(stream):
        if limit is not None and i >= limit:
            return
        if field not in row:
            raise ValueError(f"source.text_field {field!r} missing in {src['path']}; columns: {sorted(row)}")
        yield row[field]


def iter_documents(source: dict[str, Any], commit: str | None = None) -> Iterator[str]:
    """All non-empty documents of a validated `source` config, in a deterministic order (a hub
    source at `commit`, its pinned revision)."""
    kind = source["kind"]
    if kind == "builtin":
        docs: Iterator[str] = generate_documents(source["num_documents"], source["seed"])
    elif kind == "local":
        docs = _iter_local(source)
    elif kind == "hf":
        docs = _iter_hf(source, commit)
    else:
        raise ValueError(f"source.kind {kind!r} is unknown; allowed: ['builtin', 'hf', 'local']")
    for doc in docs:
        if isinstance(doc, str) and doc.strip():
            yield doc


def source_files(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """`{"path", "bytes", "sha256"}` of every local source file (empty for builtin and hub sources).

    Part of the raw fingerprint, so editing a local file in place (same config) re-fetches, and
    recorded in raw/manifest.json and shards/index.json, so a run's data identity names them.
    """
    if cfg["source"]["kind"] != "local":
        return []
    return [{"path": str(p), "bytes": p.stat().st_size, "sha256": raw_sha256(p)}
            for p in expand_local_paths(cfg["source"]["paths"])]


def hub_pins(cfg: dict[str, Any], lock: RevisionLock) -> list[dict[str, Any]]:
    """The pinned commit of a hub source (resolved and written to the lock at the first call), else []."""
    return [pin_entry(kind, repo, rev, lock.pin(kind, repo, rev))
            for kind, repo, rev in hub_downloads(cfg) if kind == "dataset"]


def raw_fingerprint(cfg: dict[str, Any], sources: list[dict[str, Any]], hub: list[dict[str, Any]] = ()) -> str:
    """What raw/ depends on: the source config (unset optional keys left out, so adding a new
    optional key does not invalidate data built before it existed), the held-out count, the
    content of every local source file and the pinned commit of a hub source."""
    source = {k: v for k, v in cfg["source"].items() if v is not None}
    return fingerprint({"source": source, "validation_documents": cfg["validation_documents"],
                        **({"source_files": sources} if sources else {}), **({"hub": list(hub)} if hub else {})})


def raw_is_current(cfg: dict[str, Any], out_dir: str | os.PathLike, sources: list[dict[str, Any]] | None = None,
                   hub: list[dict[str, Any]] = ()) -> bool:
    """True when raw/ holds exactly what this config (and these hub pins) would write (so fetch can be skipped)."""
    raw = Path(out_dir) / "raw"
    sources = source_files(cfg) if sources is None else sources
    try:
        man = read_json(raw / "manifest.json")
        return man["fingerprint"] == raw_fingerprint(cfg, sources, hub) and all(
            raw_sha256(raw / f"{s}.jsonl") == man[s]["sha256"] for s in ("train", "val"))
    except (OSError, KeyError, ValueError):
        return False


def fetch_documents(cfg: dict[str, Any], out_dir: str | os.PathLike, lock: RevisionLock | None = None) -> dict[str, Any]:
    """Write raw/train.jsonl and raw/val.jsonl under `out_dir` (the dataset's data dir).

    A hub source is downloaded at the commit `lock` pins its revision to (pinned at the first
    download; no lock: resolved for this call only) and the manifest records it (`hub`, with the
    lock file's path in `revision_lock`). Skipped when raw/manifest.json says the same config, the
    same source files and the same pinned commit already produced the current files. The new files are written next to the old ones and swapped in
    at the end, so a source that fails to read (bad encoding, binary content) leaves the previous
    raw/ intact. Returns the manifest: {"fingerprint", "num_documents", "sources", "train": {...},
    "val": {...}}.
    """
    cfg = validate_dataset_config(cfg)
    raw = Path(out_dir) / "raw"
    sources = source_files(cfg)
    lock = lock if lock is not None else RevisionLock(None)
    hub = hub_pins(cfg, lock)
    if raw_is_current(cfg, out_dir, sources, hub):
        return read_json(raw / "manifest.json")
    raw.mkdir(parents=True, exist_ok=True)
    fd, scratch = tempfile.mkstemp(prefix=".all.", suffix=".jsonl.tmp", dir=raw)  # never moved into place
    try:
        n = 0
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for doc in tqdm(iter_documents(cfg["source"], hub[0]["commit"] if hub else None),
                            desc="fetch documents", unit="doc"):
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
        "fingerprint": raw_fingerprint(cfg, sources, hub),
        "num_documents": n,
        "sources": sources,
        **({"hub": hub, "revision_lock": str(lock.path) if lock.path else None} if hub else {}),
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
