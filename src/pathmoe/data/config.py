"""Validation of one dataset config (an entry of `datasets:` in the experiment config).

Checked once at config-load time so a typo fails in a second with the key's name, not an hour
into a download. Returns a new dict with every default filled in, so later stages (and the
fingerprints that decide what can be skipped) see one canonical form.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from pathmoe.data.paths import check_dataset_paths, local_tokenizer_path

DEFAULTS: dict[str, Any] = {
    "tokenizer": {"kind": "bpe", "vocab_size": 4096},
    "validation_documents": 200,
    "shard_tokens": 50_000_000,
    "num_workers": 2,
    "dtype": "auto",
}
SOURCE_DEFAULTS: dict[str, dict[str, Any]] = {
    "builtin": {"num_documents": 4000, "seed": 0},
    "hf": {"name": None, "split": "train", "text_field": "text", "max_documents": None, "seed": 0, "revision": None},
    "local": {"text_field": "text", "txt_mode": "file", "seed": 0},
}
SOURCE_REQUIRED = {"builtin": (), "hf": ("path",), "local": ("paths",)}
TOKENIZER_KEYS = {"bpe": {"kind", "vocab_size"}, "hf": {"kind", "name", "revision", "eos_token"}}
TOP_KEYS = {"name", "source", *DEFAULTS}
DTYPES = ("auto", "uint16", "uint32")
TXT_MODES = ("file", "paragraph")


def _positive_int(value: Any, key: str, allow_zero: bool = False) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        what = "a non-negative integer" if allow_zero else "a positive integer"
        raise ValueError(f"dataset config: {key} must be {what}, got {value!r}")
    return value


def _check_keys(section: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ValueError(f"dataset config: unknown key '{where}{unknown[0]}'; allowed: {sorted(allowed)}")


def _validate_source(src: Any) -> dict[str, Any]:
    if not isinstance(src, dict) or "kind" not in src:
        raise ValueError(f"dataset config: source must be a mapping with a 'kind' in {sorted(SOURCE_DEFAULTS)}, got {src!r}")
    kind = src["kind"]
    if kind not in SOURCE_DEFAULTS:
        raise ValueError(f"dataset config: source.kind {kind!r} is unknown; allowed: {sorted(SOURCE_DEFAULTS)}")
    _check_keys(src, {"kind", *SOURCE_DEFAULTS[kind], *SOURCE_REQUIRED[kind]}, "source.")
    out = {"kind": kind, **copy.deepcopy(SOURCE_DEFAULTS[kind]), **src}
    for key in SOURCE_REQUIRED[kind]:
        if key not in src:
            raise ValueError(f"dataset config: source.{key} is required for source.kind {kind!r}")
    _positive_int(out["seed"], "source.seed", allow_zero=True)
    if kind == "builtin":
        _positive_int(out["num_documents"], "source.num_documents")
    elif kind == "hf":
        if not isinstance(out["path"], str) or not out["path"]:
            raise ValueError(f"dataset config: source.path must be a hub dataset name, got {out['path']!r}")
        if out["max_documents"] is not None:
            _positive_int(out["max_documents"], "source.max_documents")
        _optional_string(out["revision"], "source.revision", "a hub revision (branch, tag or commit)")
    else:
        paths = out["paths"]
        if isinstance(paths, str):
            paths = out["paths"] = [paths]
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
            raise ValueError(f"dataset config: source.paths must be a non-empty list of paths/globs, got {paths!r}")
        if out["txt_mode"] not in TXT_MODES:
            raise ValueError(f"dataset config: source.txt_mode {out['txt_mode']!r} is unknown; allowed: {list(TXT_MODES)}")
    if kind != "builtin" and (not isinstance(out["text_field"], str) or not out["text_field"]):
        raise ValueError(f"dataset config: source.text_field must be a non-empty string, got {out['text_field']!r}")
    return out


def _validate_tokenizer(tok: Any) -> dict[str, Any]:
    if not isinstance(tok, dict) or tok.get("kind") not in TOKENIZER_KEYS:
        got = tok.get("kind") if isinstance(tok, dict) else tok
        raise ValueError(f"dataset config: tokenizer.kind {got!r} is unknown; allowed: {sorted(TOKENIZER_KEYS)}")
    _check_keys(tok, TOKENIZER_KEYS[tok["kind"]], "tokenizer.")
    if tok["kind"] == "bpe":
        out = {"kind": "bpe", "vocab_size": tok.get("vocab_size", 4096)}
        _positive_int(out["vocab_size"], "tokenizer.vocab_size")
        if out["vocab_size"] < 257:
            raise ValueError(f"dataset config: tokenizer.vocab_size must be >= 257 (256 bytes + <|endoftext|>), got {out['vocab_size']}")
        return out
    out = {"kind": "hf", "name": tok.get("name"), "revision": tok.get("revision"), "eos_token": tok.get("eos_token")}
    if not isinstance(out["name"], str) or not out["name"]:
        raise ValueError("dataset config: tokenizer.name must be a tokenizer.json file, a folder holding one or "
                         f"a hub name, got {out['name']!r}")
    _optional_string(out["revision"], "tokenizer.revision", "a hub revision (branch, tag or commit)")
    _optional_string(out["eos_token"], "tokenizer.eos_token", "a token of the tokenizer's vocabulary")
    return out


def _optional_string(value: Any, key: str, what: str) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"dataset config: {key} must be null or {what}, got {value!r}")


def _check_paths(cfg: dict[str, Any]) -> None:
    """Every local file the config names exists and is usable (one-line error naming it otherwise)."""
    try:
        check_dataset_paths(cfg)
    except (ValueError, FileNotFoundError) as exc:
        raise type(exc)(f"dataset config: {exc}") from None
    tok = cfg["tokenizer"]
    if tok["kind"] == "hf" and tok["revision"] is not None and local_tokenizer_path(tok["name"]) is not None:
        raise ValueError(f"dataset config: tokenizer.revision applies to hub names only; {tok['name']!r} is a local path")


def hub_downloads(cfg: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(kind, repo, revision) of every hub download of a validated dataset config (pathmoe.hub pins them)."""
    found: list[tuple[str, str, str | None]] = []
    src, tok = cfg["source"], cfg["tokenizer"]
    if src["kind"] == "hf" and not os.path.exists(os.path.expanduser(src["path"])):  # not a local dataset folder
        found.append(("dataset", src["path"], src["revision"]))
    if tok["kind"] == "hf" and local_tokenizer_path(tok["name"]) is None:
        found.append(("model", tok["name"], tok["revision"]))
    return found


def validate_dataset_config(cfg: Any) -> dict[str, Any]:
    """Check a dataset config and return a copy with all defaults filled in.

    Raises ValueError (FileNotFoundError for a missing file) with a one-line message naming the
    bad key or file and what is allowed. Local files (`source.paths`, a local `tokenizer.name`)
    are checked here too: each must exist, be readable and not be empty. Their content is checked
    when a data step reads them.
    """
    if not isinstance(cfg, dict):
        raise ValueError(f"dataset config must be a mapping, got {type(cfg).__name__}")
    _check_keys(cfg, TOP_KEYS, "")
    if "source" not in cfg:
        raise ValueError("dataset config: source is required ({kind: builtin|hf|local, ...})")
    out: dict[str, Any] = {**copy.deepcopy(DEFAULTS), **copy.deepcopy(cfg)}
    out["source"] = _validate_source(cfg["source"])
    out["tokenizer"] = _validate_tokenizer(out["tokenizer"])
    _positive_int(out["validation_documents"], "validation_documents")
    _positive_int(out["shard_tokens"], "shard_tokens")
    _positive_int(out["num_workers"], "num_workers")
    if out["dtype"] not in DTYPES:
        raise ValueError(f"dataset config: dtype {out['dtype']!r} is unknown; allowed: {list(DTYPES)}")
    if out["tokenizer"]["kind"] == "bpe" and out["dtype"] == "uint16" and out["tokenizer"]["vocab_size"] > 65536:
        raise ValueError(f"dataset config: dtype 'uint16' cannot hold tokenizer.vocab_size {out['tokenizer']['vocab_size']} (> 65536); use 'uint32' or 'auto'")
    src = out["source"]
    total = src.get("num_documents") or src.get("max_documents")
    if total is not None and out["validation_documents"] >= total:
        raise ValueError(f"dataset config: validation_documents ({out['validation_documents']}) must be smaller than the number of source documents ({total})")
    _check_paths(out)
    return out
