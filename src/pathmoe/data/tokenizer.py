"""Tokenizer step: train a byte-level BPE on raw/train.jsonl, or snapshot a hub tokenizer.

Either way the result is a plain Hugging Face tokenizer directory (tokenizer.json +
tokenizer_config.json) under <data>/tokenizer/, so lm-eval and every later stage load it offline
with `AutoTokenizer.from_pretrained`. Byte-level BPE is lossless (decode(encode(x)) == x for any
text), which keeps perplexities comparable and the round trip testable. `<|endoftext|>` is the
only special token and serves as EOS (document separator), BOS and PAD.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pathmoe.data.config import validate_dataset_config
from pathmoe.data.fingerprint import fingerprint, raw_sha256
from pathmoe.data.sources import read_raw_documents
from pathmoe.io import atomic_path, atomic_write_json, read_json

EOT = "<|endoftext|>"
BUILD_FILE = "pathmoe_build.json"  # our stamp inside the tokenizer dir; HF loaders ignore it


def train_bpe(texts: Any, vocab_size: int, length: int | None = None) -> Any:
    """A byte-level BPE `tokenizers.Tokenizer` trained on an iterable of texts (deterministic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer, length=length)
    return tok


def _wrap(tok: Any) -> Any:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOT, eos_token=EOT, pad_token=EOT, unk_token=EOT,
        clean_up_tokenization_spaces=False)


def _fingerprint(cfg: dict[str, Any], out_dir: Path) -> str:
    tok_cfg = cfg["tokenizer"]
    if tok_cfg["kind"] == "bpe":
        return fingerprint({"tokenizer": tok_cfg, "train_sha256": raw_sha256(out_dir / "raw" / "train.jsonl")})
    return fingerprint({"tokenizer": tok_cfg})


def tokenizer_is_current(cfg: dict[str, Any], out_dir: str | os.PathLike) -> bool:
    tdir = Path(out_dir) / "tokenizer"
    try:
        return read_json(tdir / BUILD_FILE)["fingerprint"] == _fingerprint(cfg, Path(out_dir)) and (tdir / "tokenizer.json").is_file()
    except (OSError, KeyError, ValueError):
        return False


def build_tokenizer(cfg: dict[str, Any], out_dir: str | os.PathLike) -> Path:
    """Create <out_dir>/tokenizer/ (skipped when already built from the same config and corpus).

    bpe: trained on raw/train.jsonl (run `fetch_documents` first). hf: `AutoTokenizer` by hub
    name or local path, saved so later stages never need the hub. Returns the directory.
    """
    cfg = validate_dataset_config(cfg)
    out = Path(out_dir)
    tdir = out / "tokenizer"
    tok_cfg = cfg["tokenizer"]
    if tok_cfg["kind"] == "bpe" and not (out / "raw" / "train.jsonl").is_file():
        raise FileNotFoundError(f"tokenizer.kind 'bpe' trains on {out / 'raw' / 'train.jsonl'}, which does not exist; run `pathmoe data fetch` first")
    if tokenizer_is_current(cfg, out):
        return tdir
    if tok_cfg["kind"] == "bpe":
        n_docs = read_json(out / "raw" / "manifest.json")["train"]["num_documents"] if (out / "raw" / "manifest.json").is_file() else None
        hf_tok = _wrap(train_bpe(read_raw_documents(out / "raw" / "train.jsonl"), tok_cfg["vocab_size"], n_docs))
    else:
        from transformers import AutoTokenizer

        hf_tok = AutoTokenizer.from_pretrained(tok_cfg["name"])
        if not getattr(hf_tok, "is_fast", False):
            raise ValueError(f"tokenizer.name {tok_cfg['name']!r} has no fast (tokenizer.json) version; a fast tokenizer is required")
        if hf_tok.eos_token_id is None:
            raise ValueError(f"tokenizer.name {tok_cfg['name']!r} defines no eos_token; one is required to separate documents")
    with atomic_path(tdir) as tmp:
        hf_tok.save_pretrained(str(tmp))
        atomic_write_json(tmp / BUILD_FILE, {"fingerprint": _fingerprint(cfg, out), "tokenizer": tok_cfg})
    return tdir


def load_tokenizer(path: str | os.PathLike) -> Any:
    """The Hugging Face tokenizer saved in `path` (a tokenizer dir, or a data dir holding tokenizer/)."""
    from transformers import AutoTokenizer

    p = Path(path)
    if (p / "tokenizer" / "tokenizer.json").is_file():
        p = p / "tokenizer"
    if not (p / "tokenizer.json").is_file():
        raise FileNotFoundError(f"no tokenizer.json in {p}; build it with `pathmoe data tokenizer`")
    return AutoTokenizer.from_pretrained(str(p))


def tokenizer_meta(path: str | os.PathLike) -> dict[str, Any]:
    """{"vocab_size": len(tokenizer), "eos_id": ..., "name": ...}: what index.json records."""
    tok = load_tokenizer(path)
    build = Path(path) / BUILD_FILE
    tok_cfg = read_json(build)["tokenizer"] if build.is_file() else {"kind": "hf", "name": str(path)}
    name = tok_cfg["name"] if tok_cfg["kind"] == "hf" else f"bpe(vocab_size={tok_cfg['vocab_size']})"
    return {"vocab_size": len(tok), "eos_id": int(tok.eos_token_id), "name": name}
