"""Tokenizer step: train a byte-level BPE on raw/train.jsonl, or snapshot a hub tokenizer.

A `hf` tokenizer is a `tokenizer.json` file, a tokenizer folder or a hub name (with `revision`);
`eos_token` names its document separator when it defines none (a bare tokenizer.json).
Either way the result is a plain Hugging Face tokenizer directory (tokenizer.json +
tokenizer_config.json) under <data>/tokenizer/, so lm-eval and every later stage load it offline
with `AutoTokenizer.from_pretrained`. Byte-level BPE is lossless (decode(encode(x)) == x for any
text), which keeps perplexities comparable and the round trip testable. Its only special token,
`<|endoftext|>`, serves as EOS (document separator), BOS and PAD.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pathmoe.data.config import hub_downloads, validate_dataset_config
from pathmoe.data.fingerprint import fingerprint, raw_sha256
from pathmoe.data.paths import local_tokenizer_path, tokenizer_input_files
from pathmoe.data.sources import read_raw_documents
from pathmoe.hub import RevisionLock, pin_entry
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


def _without_nulls(d: dict[str, Any]) -> dict[str, Any]:
    """Unset optional keys left out of fingerprints, so a new optional key keeps old builds current."""
    return {k: v for k, v in d.items() if v is not None}


def hub_pins(cfg: dict[str, Any], lock: RevisionLock) -> list[dict[str, Any]]:
    """The pinned commit of a hub tokenizer (resolved and written to the lock at the first call), else []."""
    return [pin_entry(kind, repo, rev, lock.pin(kind, repo, rev))
            for kind, repo, rev in hub_downloads(cfg) if kind == "model"]


def _fingerprint(cfg: dict[str, Any], out_dir: Path, hub: list[dict[str, Any]] = ()) -> str:
    """What tokenizer/ depends on: the tokenizer config plus the corpus (bpe), the local files or
    the pinned hub commit (hf)."""
    tok_cfg = cfg["tokenizer"]
    if tok_cfg["kind"] == "bpe":
        return fingerprint({"tokenizer": tok_cfg, "train_sha256": raw_sha256(out_dir / "raw" / "train.jsonl")})
    files = [{"file": Path(f).name, "sha256": raw_sha256(f)} for f in tokenizer_input_files(cfg)]
    return fingerprint({"tokenizer": _without_nulls(tok_cfg), **({"files": files} if files else {}),
                        **({"hub": list(hub)} if hub else {})})


def tokenizer_is_current(cfg: dict[str, Any], out_dir: str | os.PathLike, hub: list[dict[str, Any]] = ()) -> bool:
    tdir = Path(out_dir) / "tokenizer"
    try:
        return (read_json(tdir / BUILD_FILE)["fingerprint"] == _fingerprint(cfg, Path(out_dir), hub)
                and (tdir / "tokenizer.json").is_file())
    except (OSError, KeyError, ValueError):
        return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _check_tokenizer_file(path: Path) -> None:
    """A one-line error naming `path` unless it parses as a `tokenizers` tokenizer.json."""
    from tokenizers import Tokenizer

    try:
        Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises its own Exception type for every parse error
        raise ValueError(f"tokenizer file {str(path)!r} is not a valid tokenizer.json ({_first_line(exc)})") from None


def _load_hf(tok_cfg: dict[str, Any], commit: str | None = None) -> Any:
    """The `transformers` fast tokenizer that `tokenizer.name` names: a tokenizer.json file, a folder, or a
    hub name (at `commit`, its pinned revision)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    name = tok_cfg["name"]
    local = local_tokenizer_path(name)
    if local is not None and local.is_file():
        _check_tokenizer_file(local)
        return PreTrainedTokenizerFast(tokenizer_file=str(local), clean_up_tokenization_spaces=False)
    if local is not None:
        if (local / "tokenizer.json").is_file():
            _check_tokenizer_file(local / "tokenizer.json")
        for cfg_file in ("tokenizer_config.json", "special_tokens_map.json"):
            if (local / cfg_file).is_file():
                try:
                    read_json(local / cfg_file)
                except ValueError as exc:
                    raise ValueError(f"tokenizer file {str(local / cfg_file)!r} is not valid JSON ({_first_line(exc)})") from None
        try:
            return AutoTokenizer.from_pretrained(str(local))
        except Exception as exc:  # transformers raises many types for unloadable folders
            raise ValueError(f"tokenizer folder {str(local)!r} could not be loaded ({_first_line(exc)})") from None
    try:
        return AutoTokenizer.from_pretrained(name, revision=commit or tok_cfg["revision"])
    except Exception as exc:
        raise ValueError(f"tokenizer.name {name!r} is no local file or folder and the hub did not provide it "
                         f"({_first_line(exc)})") from None


def _special_tokens(hf_tok: Any) -> list[str]:
    added = hf_tok.backend_tokenizer.get_added_tokens_decoder()
    return [t.content for _, t in sorted(added.items()) if t.special]


def _set_eos(hf_tok: Any, tok_cfg: dict[str, Any]) -> None:
    """Apply `tokenizer.eos_token`, or check the tokenizer has an EOS of its own (documents need one)."""
    eos = tok_cfg["eos_token"]
    if eos is not None:
        if eos not in hf_tok.get_vocab():
            raise ValueError(f"tokenizer.eos_token {eos!r} is not a token of {tok_cfg['name']!r}; its special tokens: "
                             f"{_special_tokens(hf_tok)}")
        hf_tok.eos_token = eos
    elif hf_tok.eos_token_id is None:
        raise ValueError(f"tokenizer {tok_cfg['name']!r} defines no eos_token (needed to separate documents); set "
                         f"tokenizer.eos_token to one of its special tokens: {_special_tokens(hf_tok)}")
    if hf_tok.pad_token_id is None:
        hf_tok.pad_token = hf_tok.eos_token  # lm-eval pads batches


def build_tokenizer(cfg: dict[str, Any], out_dir: str | os.PathLike, lock: RevisionLock | None = None) -> Path:
    """Create <out_dir>/tokenizer/ (skipped when already built from the same config and inputs).

    bpe: trained on raw/train.jsonl (run `fetch_documents` first). hf: a `tokenizer.json` file, a
    tokenizer folder or a hub name (+ `revision`), with `eos_token` naming its EOS when the
    tokenizer defines none; saved so later stages never need the hub. A hub name is downloaded at the
    commit `lock` pins its revision to (as for `fetch_documents`), recorded in the stamp (`hub`).
    The new directory replaces
    the old one only once complete, so a broken tokenizer file leaves the previous one in place.
    Returns the directory.
    """
    cfg = validate_dataset_config(cfg)
    out = Path(out_dir)
    tdir = out / "tokenizer"
    tok_cfg = cfg["tokenizer"]
    if tok_cfg["kind"] == "bpe" and not (out / "raw" / "train.jsonl").is_file():
        raise FileNotFoundError(f"tokenizer.kind 'bpe' trains on {out / 'raw' / 'train.jsonl'}, which does not exist; run `pathmoe data fetch` first")
    lock = lock if lock is not None else RevisionLock(None)
    hub = hub_pins(cfg, lock)
    if tokenizer_is_current(cfg, out, hub):
        return tdir
    stamp: dict[str, Any] = {"tokenizer": tok_cfg}
    if hub:
        stamp.update(hub=hub, revision_lock=str(lock.path) if lock.path else None)
    if tok_cfg["kind"] == "bpe":
        n_docs = read_json(out / "raw" / "manifest.json")["train"]["num_documents"] if (out / "raw" / "manifest.json").is_file() else None
        hf_tok = _wrap(train_bpe(read_raw_documents(out / "raw" / "train.jsonl"), tok_cfg["vocab_size"], n_docs))
    else:
        hf_tok = _load_hf(tok_cfg, hub[0]["commit"] if hub else None)
        if not getattr(hf_tok, "is_fast", False):
            raise ValueError(f"tokenizer.name {tok_cfg['name']!r} has no fast (tokenizer.json) version; a fast tokenizer is required")
        _set_eos(hf_tok, tok_cfg)
        commit = getattr(hf_tok, "init_kwargs", {}).get("_commit_hash")
        if commit:
            stamp["hub_commit"] = commit  # the hub revision the files came from
    with atomic_path(tdir) as tmp:
        hf_tok.save_pretrained(str(tmp))
        atomic_write_json(tmp / BUILD_FILE, {"fingerprint": _fingerprint(cfg, out, hub), **stamp})
    return tdir


def load_tokenizer(path: str | os.PathLike) -> Any:
    """The Hugging Face tokenizer saved in `path` (a tokenizer dir, or a data dir holding tokenizer/)."""
    from transformers import AutoTokenizer

    p = Path(path)
    if (p / "tokenizer" / "tokenizer.json").is_file():
        p = p / "tokenizer"
    if not (p / "tokenizer.json").is_file():
        raise FileNotFoundError(f"no tokenizer.json in {p}; build it with `pathmoe data tokenizer`")
    _check_tokenizer_file(p / "tokenizer.json")
    try:
        return AutoTokenizer.from_pretrained(str(p))
    except Exception as exc:  # transformers raises many types for unloadable folders
        raise ValueError(f"tokenizer folder {str(p)!r} could not be loaded ({_first_line(exc)})") from None


def tokenizer_meta(path: str | os.PathLike) -> dict[str, Any]:
    """{"vocab_size": len(tokenizer), "eos_id": ..., "name": ...}: what index.json records."""
    tok = load_tokenizer(path)
    build = Path(path) / BUILD_FILE
    tok_cfg = read_json(build)["tokenizer"] if build.is_file() else {"kind": "hf", "name": str(path)}
    name = tok_cfg["name"] if tok_cfg["kind"] == "hf" else f"bpe(vocab_size={tok_cfg['vocab_size']})"
    return {"vocab_size": len(tok), "eos_id": int(tok.eos_token_id), "name": name}
