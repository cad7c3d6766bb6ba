"""Tokenize raw/{train,val}.jsonl into flat binary token shards plus shards/index.json.

Layout: shards/{split}_{k:05d}.bin, each `shard_tokens` tokens (the last one of a split shorter),
documents each followed by EOS, raw little-endian uint16/uint32. index.json (schema in
docs/ARCHITECTURE.md) also records per shard its `start`/`end` cursor ([document, token offset])
and a `fingerprint` of everything the bytes depend on (tokenizer.json, raw files, shard_tokens,
dtype).

Resumable: after every shard an atomic shards/index.partial.json lists the finished ones; a rerun
keeps each listed shard whose file is present with the listed size and sha256 and starts from
the recorded cursor for the others, so a crash or a deleted shard costs only the missing shards.
Safe: a build for other inputs goes to shards.new/ and replaces shards/ only when complete.
Deterministic: same inputs -> byte-identical shards, whatever `num_workers`.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from pathmoe.data.config import validate_dataset_config
from pathmoe.data.encode import Encoder, TokenStream, count_lines
from pathmoe.data.fingerprint import fingerprint, raw_sha256
from pathmoe.data.tokenizer import BUILD_FILE, tokenizer_meta
from pathmoe.io import atomic_path, atomic_write_json, read_json, sha256_file

SPLITS = ("train", "val")
UINT16_MAX_VOCAB = 65536
STAGING_DIR = "shards.new"  # a rebuild for other inputs, swapped in for shards/ once complete
OLD_DIR = ".shards.old"  # shards/ between the two renames of the swap


def resolve_dtype(requested: str, vocab_size: int) -> str:
    """uint16 when every id fits (vocab <= 65536) under `auto`; refuse uint16 for larger vocabs."""
    if requested == "auto":
        return "uint16" if vocab_size <= UINT16_MAX_VOCAB else "uint32"
    if requested == "uint16" and vocab_size > UINT16_MAX_VOCAB:
        raise ValueError(f"dtype 'uint16' cannot hold vocab_size {vocab_size} (> {UINT16_MAX_VOCAB}); use 'uint32' or 'auto'")
    if requested not in ("uint16", "uint32"):
        raise ValueError(f"dtype {requested!r} is unknown; allowed: ['auto', 'uint16', 'uint32']")
    return requested


def shard_is_valid(path: Path, entry: dict[str, Any], itemsize: int) -> bool:
    return path.is_file() and path.stat().st_size == entry["num_tokens"] * itemsize and sha256_file(path) == entry["sha256"]


def num_documents(raw_path: Path, sha256: str) -> int:
    """Documents (= lines) of raw/<split>.jsonl: from raw/manifest.json when it describes this very
    file (same sha256), which spares a full pass over it; otherwise counted."""
    try:
        entry = read_json(raw_path.parent / "manifest.json")[raw_path.stem]
        if entry["sha256"] == sha256:
            return int(entry["num_documents"])
    except (OSError, KeyError, TypeError, ValueError):
        pass
    return count_lines(raw_path)


def _build_split(split: str, raw_path: Path, n_docs: int, sdir: Path, encoder: Encoder, meta: dict[str, Any],
                 dtype: str, shard_tokens: int, previous: list[dict[str, Any]],
                 save: Callable[[list[dict]], None]) -> list[dict]:
    """Shards of one split; reuses valid `previous` entries, rebuilds the rest from their cursors."""
    np_dtype = np.dtype(dtype).newbyteorder("<")
    entries: list[dict[str, Any]] = []
    cursor, stream = (0, 0), None
    with tqdm(total=n_docs, desc=f"tokenize {split}", unit="doc") as bar:
        while cursor[0] < n_docs:
            name = f"{split}_{len(entries):05d}.bin"
            prev = previous[len(entries)] if len(entries) < len(previous) else None
            if prev and tuple(prev["start"]) == cursor and shard_is_valid(sdir / name, prev, np_dtype.itemsize):
                entries.append(prev)
                cursor, stream = tuple(prev["end"]), None
                bar.update(cursor[0] - bar.n)
                continue
            if stream is None or stream.cursor != cursor:
                bar.update(cursor[0] - bar.n)
                stream = TokenStream(raw_path, encoder, meta["eos_id"], np_dtype, start=cursor, progress=bar)
            tokens = stream.take(shard_tokens)
            with atomic_path(sdir / name) as tmp:
                tmp.write_bytes(tokens.tobytes())
            entries.append({"file": name, "num_tokens": int(len(tokens)), "sha256": sha256_file(sdir / name),
                            "start": list(cursor), "end": list(stream.cursor)})
            cursor = stream.cursor
            save(entries)
    for stale in sdir.glob(f"{split}_*.bin"):  # left over from an earlier, longer build
        m = re.fullmatch(rf"{split}_(\d+)\.bin", stale.name)
        if m and int(m.group(1)) >= len(entries):
            stale.unlink()
    return entries


def _inputs(out: Path) -> tuple[Path, Path]:
    tdir = out / "tokenizer"
    if not (tdir / "tokenizer.json").is_file():
        raise FileNotFoundError(f"no tokenizer in {tdir}; run `pathmoe data tokenizer` first")
    for split in SPLITS:
        if not (out / "raw" / f"{split}.jsonl").is_file():
            raise FileNotFoundError(f"missing {out / 'raw' / f'{split}.jsonl'}; run `pathmoe data fetch` first")
    return tdir, out / "shards"


def _previous_fingerprint(index_path: Path) -> str | None:
    try:
        return read_json(index_path).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def _build_dir(out: Path, fp: str) -> Path:
    """Where this build writes: shards/ itself, or shards.new/ when shards/ holds complete data
    of other inputs, which must stay intact until the new build is complete (then swapped in)."""
    sdir, stage, old = out / "shards", out / STAGING_DIR, out / OLD_DIR
    if not sdir.exists() and (stage / "index.json").is_file():
        os.replace(stage, sdir)  # a previous swap was interrupted between its two renames
    shutil.rmtree(old, ignore_errors=True)
    current = _previous_fingerprint(sdir / "index.json")
    if current is None or current == fp:
        shutil.rmtree(stage, ignore_errors=True)
        return sdir
    return stage


def _swap_in(out: Path, stage: Path) -> None:
    """Replace shards/ by the completed `stage` directory (two renames, then the old data goes)."""
    sdir, old = out / "shards", out / OLD_DIR
    os.replace(sdir, old)
    os.replace(stage, sdir)
    shutil.rmtree(old, ignore_errors=True)


def _sources(out: Path, train_sha256: str) -> list[dict[str, Any]]:
    """The source files raw/manifest.json lists, when the manifest describes the current raw files."""
    try:
        man = read_json(out / "raw" / "manifest.json")
        return list(man.get("sources", [])) if man["train"]["sha256"] == train_sha256 else []
    except (OSError, KeyError, TypeError, ValueError):
        return []


def _hub_pins(out: Path, train_sha256: str) -> list[dict[str, Any]]:
    """The hub commits the raw documents (when raw/manifest.json describes the current files) and the
    tokenizer came from, as their stamps record them."""
    pins = []
    try:
        man = read_json(out / "raw" / "manifest.json")
        if man["train"]["sha256"] == train_sha256:
            pins += list(man.get("hub", []))
    except (OSError, KeyError, TypeError, ValueError):
        pass
    try:
        pins += list(read_json(out / "tokenizer" / BUILD_FILE).get("hub", []))
    except (OSError, TypeError, ValueError):
        pass
    return pins


def tokenize_to_shards(cfg: dict[str, Any], out_dir: str | os.PathLike) -> dict[str, Any]:
    """Write <out_dir>/shards/{train,val}_*.bin and index.json; returns the index.

    Skips every shard that a previous (possibly interrupted) run with the same inputs finished.
    Shards of other inputs (a changed corpus or tokenizer) stay in place, untouched, until the
    new build is complete: it is written to shards.new/ and swapped in at the end, so a failing
    or interrupted rebuild never leaves a dataset without its previous shards.
    """
    cfg = validate_dataset_config(cfg)
    out = Path(out_dir)
    tdir, sdir = _inputs(out)
    meta = tokenizer_meta(tdir)
    dtype = resolve_dtype(cfg["dtype"], meta["vocab_size"])
    raw_sha = {s: raw_sha256(out / "raw" / f"{s}.jsonl") for s in SPLITS}
    fp = fingerprint({"tokenizer_sha256": sha256_file(tdir / "tokenizer.json"), "dtype": dtype,
                      "shard_tokens": cfg["shard_tokens"], "eos_id": meta["eos_id"],
                      **{f"{s}_sha256": raw_sha[s] for s in SPLITS}})
    index: dict[str, Any] = {"dtype": dtype, "vocab_size": meta["vocab_size"], "eos_id": meta["eos_id"],
                             "tokenizer": meta["name"], "shard_tokens": cfg["shard_tokens"],
                             "fingerprint": fp, "sources": _sources(out, raw_sha["train"]), "splits": {}}
    hub = _hub_pins(out, raw_sha["train"])
    if hub:  # part of the dataset identity: the same bytes from another commit are another dataset
        index["hub"] = hub
    build = _build_dir(out, fp)
    previous: dict[str, list] = {}
    for candidate in (build / "index.json", build / "index.partial.json"):
        if candidate.is_file():
            old = read_json(candidate)
            if old.get("fingerprint") == fp:
                previous = {s: old["splits"].get(s, []) for s in SPLITS}
                break
            candidate.unlink()  # describes other inputs: it must not outlive the shards it lists
    build.mkdir(parents=True, exist_ok=True)

    def save_partial(split: str) -> Callable[[list[dict]], None]:
        def save(entries: list[dict]) -> None:
            atomic_write_json(build / "index.partial.json", {**index, "splits": {**previous, **index["splits"], split: entries}})
        return save

    with Encoder(tdir / "tokenizer.json", cfg["num_workers"]) as encoder:
        for split in SPLITS:
            raw_path = out / "raw" / f"{split}.jsonl"
            index["splits"][split] = _build_split(split, raw_path, num_documents(raw_path, raw_sha[split]), build, encoder,
                                                  meta, dtype, cfg["shard_tokens"], previous.get(split, []),
                                                  save_partial(split))
    index["num_tokens"] = {s: sum(e["num_tokens"] for e in index["splits"][s]) for s in SPLITS}
    if not (build / "index.json").is_file() or read_json(build / "index.json") != index:  # a no-op rerun leaves it untouched
        atomic_write_json(build / "index.json", index)
    (build / "index.partial.json").unlink(missing_ok=True)
    if build != sdir:
        _swap_in(out, build)
    return index
