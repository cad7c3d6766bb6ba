"""Data stage: sources, builtin corpus, tokenizer, shards (integrity, corruption, resume), config."""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from pathmoe.data import (LEXICON, TokenShards, build_tokenizer, fetch_documents, generate_documents,
                          iter_documents, load_tokenizer, prepare_dataset, tokenize_to_shards,
                          validate_dataset_config)
from pathmoe.data import shards as shards_mod
from pathmoe.data.builtin_corpus import CAST
from pathmoe.data.commands import register
from pathmoe.data.shards import resolve_dtype
from pathmoe.data.sources import read_raw_documents
from pathmoe.io import read_json, sha256_file

CFG = {"source": {"kind": "builtin", "num_documents": 160, "seed": 3},
       "tokenizer": {"kind": "bpe", "vocab_size": 600}, "validation_documents": 16,
       "shard_tokens": 6000, "num_workers": 1}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data") / "builtin"
    prepare_dataset(CFG, out)
    return out


def _split_docs(tokens: np.ndarray, eos: int) -> list[np.ndarray]:
    ends = np.flatnonzero(tokens == eos)
    return np.split(tokens, ends + 1)[:-1]  # every document ends with EOS


# ---------------------------------------------------------------- builtin corpus

def test_builtin_corpus_deterministic_and_prefix_stable() -> None:
    a = list(generate_documents(30, seed=1))
    assert a == list(generate_documents(30, seed=1))
    assert a[:10] == list(generate_documents(10, seed=1))  # document i depends only on (seed, i)
    assert a != list(generate_documents(30, seed=2))
    words = [len(d.split()) for d in a]
    assert 80 <= min(words) and max(words) <= 220


def test_builtin_corpus_covers_every_table9_category() -> None:
    text = " ".join(generate_documents(300, seed=0))
    words = set(re.findall(r"[A-Za-z]+|\d+(?:st|nd|rd|th)?|[^\w\s]", text))
    lexical = ["person_names", "titles_roles", "speech_verbs", "adverbs_discourse", "adverbs_manner", "adverbs_time",
               "nationalities", "temporal_words", "prepositions", "conjunctions", "determiners", "pronouns",
               "quantifiers", "common_verbs", "adjectives"]
    for cat in lexical:  # most of each list occurs, not just one word
        hits = [w for w in LEXICON[cat] if w in words or w.capitalize() in words]
        assert len(hits) >= 0.5 * len(LEXICON[cat]), (cat, sorted(set(LEXICON[cat]) - set(hits)))
    known = {w for ws in LEXICON.values() for w in ws}
    patterns = {
        "adverbs_other": lambda w: w.endswith("ly") and w not in set(LEXICON["adverbs_discourse"] + LEXICON["adverbs_manner"] + LEXICON["adverbs_time"]),
        "verbs": lambda w: re.fullmatch(r"[a-z]+(ing|ed)", w) is not None,
        "proper_nouns": lambda w: w[:1].isupper() and w.isalpha() and w not in set(LEXICON["person_names"]) and w.lower() not in known,
        "abstract_nouns": lambda w: re.fullmatch(r"[a-z]+(tion|sion|ness|ment)", w) is not None,
        "agent_nouns": lambda w: re.fullmatch(r"[a-z]+(er|or)s?", w) is not None,
        "numbers": str.isdigit,
        "ordinals": lambda w: re.fullmatch(r"\d+(st|nd|rd|th)", w) is not None,
        "punctuation": lambda w: w in LEXICON["punctuation"],
    }
    for cat, rule in patterns.items():
        assert sum(map(rule, words)) >= 3, cat
    assert set(LEXICON) >= set(patterns) | set(lexical)


def test_builtin_stories_reuse_entities_for_cloze() -> None:
    """LAMBADA-style property: the last word is usually predictable from earlier context."""
    docs = list(generate_documents(200, seed=0))
    last = [re.findall(r"[A-Za-z]+", d)[-1] for d in docs]
    seen = [w in re.findall(r"[A-Za-z]+", d)[:-1] for w, d in zip(last, docs)]
    assert np.mean(seen) >= 0.8
    surname_of = {c["first"]: c["surname"] for c in CAST}  # the cast is a fixed world across stories
    pairs = {p for d in docs for p in re.findall(r"\b([A-Z][a-z]+) ([A-Z][a-z]+)\b", d) if p[0] in surname_of}
    assert len(pairs) > 50 and all(surname_of[first] == last for first, last in pairs)
    vocab = {w for d in docs for w in re.findall(r"[A-Za-z]+", d)}
    assert 500 <= len(vocab) <= 4000  # learnable, yet not trivial


# ---------------------------------------------------------------- raw split + tokenizer

def test_raw_split_is_deterministic_disjoint_and_complete(built: Path) -> None:
    train = list(read_raw_documents(built / "raw" / "train.jsonl"))
    val = list(read_raw_documents(built / "raw" / "val.jsonl"))
    assert len(val) == CFG["validation_documents"] and len(train) + len(val) == CFG["source"]["num_documents"]
    assert sorted(train + val) == sorted(generate_documents(160, seed=3)) and not set(train) & set(val)
    assert val != list(generate_documents(160, seed=3))[-16:]  # a random draw, not the tail


def test_tokenizer_round_trip_and_hf_loadable(built: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(built / "tokenizer"))
    assert len(tok) == 600 and tok.convert_ids_to_tokens(tok.eos_token_id) == "<|endoftext|>"
    assert tok.eos_token_id == tok.bos_token_id == tok.pad_token_id
    samples = list(read_raw_documents(built / "raw" / "val.jsonl"))[:5] + ["  odd\tspacing ,\n\nünïcode 日本 ok .", ""]
    for text in samples:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
    assert load_tokenizer(built)("On Monday")["input_ids"] == tok("On Monday")["input_ids"]


def test_tokenizer_training_is_byte_identical(built: Path, tmp_path: Path) -> None:
    shutil.copytree(built / "raw", tmp_path / "raw")
    build_tokenizer(CFG, tmp_path)
    assert (tmp_path / "tokenizer" / "tokenizer.json").read_bytes() == (built / "tokenizer" / "tokenizer.json").read_bytes()


def test_hf_tokenizer_from_local_dir(built: Path, tmp_path: Path) -> None:
    cfg = {**CFG, "tokenizer": {"kind": "hf", "name": str(built / "tokenizer")}}
    shutil.copytree(built / "raw", tmp_path / "raw")
    build_tokenizer(cfg, tmp_path)
    index = tokenize_to_shards(cfg, tmp_path)
    ref = read_json(built / "shards" / "index.json")
    assert [e["sha256"] for e in index["splits"]["train"]] == [e["sha256"] for e in ref["splits"]["train"]]


# ---------------------------------------------------------------- shards

def test_shard_index_integrity_and_content(built: Path) -> None:
    index = read_json(built / "shards" / "index.json")
    assert index["dtype"] == "uint16" and index["vocab_size"] == 600 and index["eos_id"] == 0
    tok = load_tokenizer(built)
    for split in ("train", "val"):
        entries = index["splits"][split]
        assert all(e["num_tokens"] == CFG["shard_tokens"] for e in entries[:-1])
        for e in entries:
            path = built / "shards" / e["file"]
            assert path.stat().st_size == 2 * e["num_tokens"] and sha256_file(path) == e["sha256"]
        ts = TokenShards(built / "shards", split)
        assert ts.num_tokens == sum(e["num_tokens"] for e in entries) == index["num_tokens"][split]
        docs = _split_docs(np.asarray(ts.tokens), ts.eos_id)  # documents joined with EOS, nothing else
        assert [tok.decode(d[:-1].tolist()) for d in docs] == list(read_raw_documents(built / "raw" / f"{split}.jsonl"))
    assert len(index["splits"]["train"]) >= 3


def test_window_across_shard_boundaries(built: Path) -> None:
    ts = TokenShards(built, "train")
    flat = np.asarray(ts.tokens).astype(np.int64)
    for start, length in [(0, 7), (CFG["shard_tokens"] - 5, 129), (2 * CFG["shard_tokens"] - 1, CFG["shard_tokens"] + 2),
                          (ts.num_tokens - 129, 129)]:
        assert np.array_equal(ts.window(start, length), flat[start:start + length])
    with pytest.raises(ValueError, match="outside"):
        ts.window(ts.num_tokens - 3, 4)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_shard_is_detected(built: Path, tmp_path: Path, damage: str) -> None:
    shutil.copytree(built / "shards", tmp_path / "shards")
    target = tmp_path / "shards" / "train_00001.bin"
    data = bytearray(target.read_bytes())
    if damage == "flip":
        data[101] ^= 0xFF
        target.write_bytes(bytes(data))
        TokenShards(tmp_path / "shards", "train", verify=False)  # sizes still fine
        with pytest.raises(ValueError, match=r"train_00001\.bin is corrupted"):
            TokenShards(tmp_path / "shards", "train")
    else:
        target.write_bytes(bytes(data[:-2]))
        with pytest.raises(ValueError, match=r"train_00001\.bin is truncated"):
            TokenShards(tmp_path / "shards", "train", verify=False)


def _copy_inputs(built: Path, dst: Path) -> None:
    shutil.copytree(built / "raw", dst / "raw")
    shutil.copytree(built / "tokenizer", dst / "tokenizer")


def test_deleted_shard_is_rebuilt_alone_and_identical(built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _copy_inputs(built, tmp_path)
    shutil.copytree(built / "shards", tmp_path / "shards")
    (tmp_path / "shards" / "train_00002.bin").unlink()
    taken = []
    orig = shards_mod.TokenStream.take
    monkeypatch.setattr(shards_mod.TokenStream, "take", lambda self, n: taken.append(self.cursor) or orig(self, n))
    tokenize_to_shards(CFG, tmp_path)
    start = read_json(built / "shards" / "index.json")["splits"]["train"][2]["start"]
    assert taken == [tuple(start)]  # exactly one shard encoded, from its recorded cursor
    for f in sorted((built / "shards").glob("*.bin")):
        assert (tmp_path / "shards" / f.name).read_bytes() == f.read_bytes()


def test_interrupted_build_resumes_to_identical_bytes(built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _copy_inputs(built, tmp_path)
    orig = shards_mod.TokenStream.take
    calls = []

    def crash_on_third(self, n):  # noqa: ANN001, ANN202
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return orig(self, n)

    monkeypatch.setattr(shards_mod.TokenStream, "take", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        tokenize_to_shards(CFG, tmp_path)
    assert not (tmp_path / "shards" / "index.json").exists()
    partial = read_json(tmp_path / "shards" / "index.partial.json")
    assert len(partial["splits"]["train"]) == 2
    first_two = [(tmp_path / "shards" / f"train_0000{i}.bin").stat().st_mtime_ns for i in range(2)]
    monkeypatch.setattr(shards_mod.TokenStream, "take", orig)
    index = tokenize_to_shards(CFG, tmp_path)
    assert first_two == [(tmp_path / "shards" / f"train_0000{i}.bin").stat().st_mtime_ns for i in range(2)]
    assert index["splits"] == read_json(built / "shards" / "index.json")["splits"]
    assert not (tmp_path / "shards" / "index.partial.json").exists()


def test_two_workers_and_uint32_give_same_tokens(built: Path, tmp_path: Path) -> None:
    _copy_inputs(built, tmp_path)
    tokenize_to_shards({**CFG, "num_workers": 2, "dtype": "uint32"}, tmp_path)
    a, b = TokenShards(tmp_path, "train"), TokenShards(built, "train")
    assert a.dtype == np.uint32 and np.array_equal(np.asarray(a.tokens), np.asarray(b.tokens))


def test_dtype_rules() -> None:
    assert resolve_dtype("auto", 65536) == "uint16" and resolve_dtype("auto", 65537) == "uint32"
    with pytest.raises(ValueError, match="dtype 'uint16' cannot hold vocab_size 100000"):
        resolve_dtype("uint16", 100000)


# ---------------------------------------------------------------- local sources

def test_local_sources_txt_jsonl_parquet_glob(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "b.txt").write_text("Para one.\n\nPara two.\n")
    (tmp_path / "c" / "a.txt").write_text("Whole file.")
    (tmp_path / "c" / "x.jsonl").write_text(json.dumps({"body": "J1", "id": 1}) + "\n\n" + json.dumps({"body": "J2"}) + "\n")
    pq.write_table(pa.table({"body": ["P1", "", "P2"], "n": [1, 2, 3]}), tmp_path / "y.parquet")
    src = {"kind": "local", "paths": [str(tmp_path / "c" / "*.txt"), str(tmp_path / "c" / "*.jsonl"), str(tmp_path / "y.parquet")],
           "text_field": "body"}
    cfg = validate_dataset_config({"source": src, "validation_documents": 1})
    assert list(iter_documents(cfg["source"])) == ["Whole file.", "Para one.\n\nPara two.\n", "J1", "J2", "P1", "P2"]
    cfg = validate_dataset_config({"source": {**src, "txt_mode": "paragraph"}, "validation_documents": 1})
    assert list(iter_documents(cfg["source"]))[:3] == ["Whole file.", "Para one.", "Para two."]
    man = fetch_documents(cfg, tmp_path / "out")
    assert (man["train"]["num_documents"], man["val"]["num_documents"]) == (6, 1)


def test_local_source_errors_name_the_problem(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope" / "*.jsonl")
    with pytest.raises(FileNotFoundError, match=re.escape(repr(missing))):  # at config-load time
        validate_dataset_config({"source": {"kind": "local", "paths": [missing]}})
    (tmp_path / "x.jsonl").write_text(json.dumps({"content": "hi"}) + "\n")
    cfg = validate_dataset_config({"source": {"kind": "local", "paths": [str(tmp_path / "x.jsonl")]}})
    with pytest.raises(ValueError, match="source.text_field 'text' missing"):
        list(iter_documents(cfg["source"]))


# ---------------------------------------------------------------- config + CLI

@pytest.mark.parametrize("cfg, key", [
    ({"source": {"kind": "s3"}}, "source.kind 's3'"),
    ({"source": {"kind": "builtin", "num_documents": 0}}, "source.num_documents"),
    ({"source": {"kind": "builtin", "num_docs": 5}}, "unknown key 'source.num_docs'"),
    ({"source": {"kind": "hf"}}, "source.path"),
    ({"source": {"kind": "local", "paths": []}}, "source.paths"),
    ({"source": {"kind": "builtin"}, "tokenizer": {"kind": "sentencepiece"}}, "tokenizer.kind 'sentencepiece'"),
    ({"source": {"kind": "builtin"}, "tokenizer": {"kind": "bpe", "vocab_size": -3}}, "tokenizer.vocab_size"),
    ({"source": {"kind": "builtin"}, "tokenizer": {"kind": "bpe", "vocab_size": 70000}, "dtype": "uint16"}, "dtype 'uint16'"),
    ({"source": {"kind": "builtin"}, "dtype": "int8"}, "dtype 'int8'"),
    ({"source": {"kind": "builtin"}, "shard_tokens": 0}, "shard_tokens"),
    ({"source": {"kind": "builtin"}, "num_workers": 0}, "num_workers"),
    ({"source": {"kind": "builtin", "num_documents": 10}, "validation_documents": 10}, "validation_documents"),
    ({"source": {"kind": "builtin"}, "shards": 3}, "unknown key 'shards'"),
])
def test_bad_config_one_line_error_naming_key(cfg: dict, key: str) -> None:
    with pytest.raises(ValueError) as err:
        validate_dataset_config(cfg)
    assert key in str(err.value) and "\n" not in str(err.value)


def test_config_defaults_filled_and_idempotent(tmp_path: Path) -> None:
    cfg = validate_dataset_config({"source": {"kind": "builtin"}})
    (tmp_path / "a.txt").write_text("Some text.")
    for raw in ({"source": {"kind": "builtin"}}, {"source": {"kind": "hf", "path": "x/y"}, "name": "web"},
                {"source": {"kind": "local", "paths": str(tmp_path / "*.txt")}, "tokenizer": {"kind": "hf", "name": "tok"}}):
        once = validate_dataset_config(raw)
        assert validate_dataset_config(once) == once
    assert cfg["source"] == {"kind": "builtin", "num_documents": 4000, "seed": 0}
    assert cfg["tokenizer"] == {"kind": "bpe", "vocab_size": 4096}
    assert (cfg["validation_documents"], cfg["shard_tokens"], cfg["num_workers"], cfg["dtype"]) == (200, 50_000_000, 2, "auto")


def test_cli_prepare_skips_done_work(built: Path, tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="cmd"))
    (tmp_path / "cfg.json").write_text(json.dumps(CFG))
    _copy_inputs(built, tmp_path / "d")
    shutil.copytree(built / "shards", tmp_path / "d" / "shards")
    shutil.copy(built / "raw" / "manifest.json", tmp_path / "d" / "raw" / "manifest.json")
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "d").rglob("*") if p.is_file()}
    args = parser.parse_args(["data", "prepare", "--dataset-config", str(tmp_path / "cfg.json"), "--out", str(tmp_path / "d")])
    assert args.func(args) == 0
    assert before == {p: p.stat().st_mtime_ns for p in (tmp_path / "d").rglob("*") if p.is_file()}


def test_changed_config_rebuilds_and_drops_stale_shards(built: Path, tmp_path: Path) -> None:
    _copy_inputs(built, tmp_path)
    shutil.copytree(built / "shards", tmp_path / "shards")
    index = tokenize_to_shards({**CFG, "shard_tokens": 10**6}, tmp_path)
    assert sorted(p.name for p in (tmp_path / "shards").glob("*.bin")) == ["train_00000.bin", "val_00000.bin"]
    assert index["shard_tokens"] == 10**6 and read_json(tmp_path / "shards" / "index.json") == index
    assert np.array_equal(np.asarray(TokenShards(tmp_path, "train").tokens), np.asarray(TokenShards(built, "train").tokens))


# ---------------------------------------------------------------- raw passes

def test_tokenize_takes_document_counts_from_a_matching_manifest(built: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    counted = []
    orig = shards_mod.count_lines
    monkeypatch.setattr(shards_mod, "count_lines", lambda p: counted.append(Path(p).name) or orig(p))
    _copy_inputs(built, tmp_path / "with")  # raw/ includes manifest.json
    assert tokenize_to_shards(CFG, tmp_path / "with")["splits"] == read_json(built / "shards" / "index.json")["splits"]
    assert counted == []  # no extra pass over the raw files
    _copy_inputs(built, tmp_path / "stale")
    man = read_json(built / "raw" / "manifest.json")
    man["train"]["sha256"] = "0" * 64  # describes another train.jsonl: its count must not be trusted
    (tmp_path / "stale" / "raw" / "manifest.json").write_text(json.dumps(man))
    assert tokenize_to_shards(CFG, tmp_path / "stale")["splits"] == read_json(built / "shards" / "index.json")["splits"]
    assert counted == ["train.jsonl"]


def test_prepare_hashes_each_raw_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pathmoe.audit import hashing
    from pathmoe.data import fingerprint as fp_mod

    hashed = []
    orig = hashing.sha256_file
    monkeypatch.setattr(hashing, "sha256_file", lambda p, *a: hashed.append(Path(p).name) or orig(p, *a))
    monkeypatch.setattr(fp_mod, "_RAW_HASHES", hashing.HashCache())
    prepare_dataset(CFG, tmp_path)  # fresh build: fetch's manifest, tokenizer stamp, shard fingerprint
    prepare_dataset(CFG, tmp_path)  # no-op rerun in the same process
    assert sorted(hashed) == ["train.jsonl", "val.jsonl"]
