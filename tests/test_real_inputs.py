"""Material users bring from outside the project: local corpora, tokenizer files, their own tasks.

Each test builds its fixtures here (tests/real_inputs.py): text files with whitespace-only blank
lines, a `tokenizer.json` trained with the `tokenizers` library, an lm-eval task folder. Asserted:
bad files fail with one line naming the file; a failing data step leaves the built data intact;
a source edit changes the data identity; tokenizers load from a file, a folder or a hub name;
no evaluation example exceeds the model's context, and what was cut or skipped is counted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pathmoe.cli import main
from pathmoe.config import ConfigError, load_experiment
from pathmoe.data import (build_tokenizer, dataset_identity, fetch_documents, iter_documents, load_tokenizer,
                          prepare_dataset, tokenize_to_shards, validate_dataset_config)
from pathmoe.data import shards as shards_mod
from real_inputs import EOS, direct_mc_scores, mc_examples, train_tokenizer_json, write_corpus, write_task_dir

REPO = Path(__file__).resolve().parents[1]


def _local(paths: list[Path] | list[str], tokenizer: dict | None = None, **extra) -> dict:
    return {"source": {"kind": "local", "paths": [str(p) for p in paths], "txt_mode": "paragraph"},
            "tokenizer": tokenizer or {"kind": "bpe", "vocab_size": 400}, "validation_documents": 6,
            "num_workers": 1, **extra}


def _error_line(stderr: str) -> str:
    """The CLI's error: exactly one line `pathmoe <stage>: error: ...` (progress bars aside)."""
    lines = [line for line in stderr.replace("\r", "\n").splitlines() if line.startswith("pathmoe ")]
    assert len(lines) == 1 and ": error: " in lines[0], stderr
    return lines[0]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("corpus")


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tok")
    files = write_corpus(folder / "text", n_files=2, docs_per_file=20, seed=11)
    return train_tokenizer_json(folder / "neox-like" / "tokenizer.json", [f.read_text() for f in files])


# ---------------------------------------------------------------- paragraphs

def test_whitespace_only_lines_separate_paragraphs(tmp_path):
    files = write_corpus(tmp_path / "c", n_files=2, docs_per_file=10)
    text = files[0].read_bytes().decode()
    assert "\n   \n" in text and "\n\t\n" in text and "\n \t \r\n" in text  # the fixture has them
    cfg = validate_dataset_config(_local(files))
    docs = list(iter_documents(cfg["source"]))
    assert len(docs) == 20  # one document per paragraph, whatever whitespace its blank line holds
    assert all(d == d.strip() and d.count("\n") == 1 for d in docs)  # each spans its two lines, no blank
    man = fetch_documents(cfg, tmp_path / "out")
    val = [json.loads(line)["text"] for line in (tmp_path / "out/raw/val.jsonl").read_text().splitlines()]
    origin = {d: f for f in files for d in iter_documents(validate_dataset_config(_local([f]))["source"])}
    assert len({origin[d] for d in val}) == 2 and man["val"]["num_documents"] == 6  # held out from both files


# ---------------------------------------------------------------- one-line errors naming the file

BAD_SOURCES = {
    "latin1.txt": (b"Caf\xe9 au lait.\n\nSecond paragraph.\n", "not UTF-8 text (byte 0xe9 on line 1)"),
    "binary.txt": (b"\x00" * 64, "contains NUL bytes"),
    "blank.txt": (b"  \n\t\n \n", "holds no text"),
    "nul_inside.jsonl": (b'{"text": "fine"}\n{"text": "bad \\u0000 byte"}\n', "line 2 holds a NUL character"),
    "broken.jsonl": (b'{"text": "fine"}\n{"text": oops}\n', "line 2 is not valid JSON"),
    "not_text.jsonl": (b'{"text": 12}\n', "holds int, not text"),
    "fake.parquet": (b"PAR1 this is no parquet file", "not a readable Parquet file"),
}


@pytest.mark.parametrize("name", sorted(BAD_SOURCES))
def test_bad_source_file_is_one_line_naming_it(name, tmp_path, capsys):
    content, problem = BAD_SOURCES[name]
    good = write_corpus(tmp_path / "c", n_files=1, docs_per_file=10)[0]
    bad = tmp_path / "c" / name
    bad.write_bytes(content)
    (tmp_path / "cfg.json").write_text(json.dumps(_local([good, bad])))
    assert main(["data", "fetch", "--dataset-config", str(tmp_path / "cfg.json"), "--out", str(tmp_path / "d")]) == 2
    err = _error_line(capsys.readouterr().err)
    assert repr(str(bad)) in err and problem in err, err


def test_empty_or_missing_files_fail_at_config_load(tmp_path):
    good = write_corpus(tmp_path / "c", n_files=1, docs_per_file=10)[0]
    (tmp_path / "c" / "empty.txt").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.txt' is empty"):
        validate_dataset_config(_local([good, tmp_path / "c" / "empty.txt"]))
    with pytest.raises(FileNotFoundError, match="no file matches"):
        validate_dataset_config(_local([tmp_path / "c" / "*.jsonl"]))
    with pytest.raises(FileNotFoundError, match="tokenizer.name '.*/nope/tokenizer.json': no such file"):
        validate_dataset_config(_local([good], {"kind": "hf", "name": str(tmp_path / "nope" / "tokenizer.json")}))
    with pytest.raises(FileNotFoundError, match="source.path '/.*/hub_copy': no such folder"):
        validate_dataset_config({"source": {"kind": "hf", "path": str(tmp_path / "hub_copy")}})
    (tmp_path / "tokdir").mkdir()
    with pytest.raises(ValueError, match="holds neither tokenizer.json nor tokenizer_config.json"):
        validate_dataset_config(_local([good], {"kind": "hf", "name": str(tmp_path / "tokdir")}))


def _experiment(tmp_path: Path, dataset: dict, **eval_cfg) -> dict:
    return {"name": "real", "output_dir": str(tmp_path / "results"), "datasets": {"corpus": dataset},
            "scales": {"tiny": {"model": {"d_model": 32, "n_layers": 2, "n_heads": 2, "n_kv_heads": 1, "n_experts": 4,
                                          "top_k": 2, "expert_hidden": 32, "max_seq_len": 64}}},
            "variants": {"indep": {"router": "linear"}}, "defaults": {"scale": "tiny", "dataset": "corpus"},
            "runs": {"indep": {"variant": "indep"}}, "train": {"seq_len": 32}, "analysis": {"seq_len": 32},
            **({"eval": eval_cfg} if eval_cfg else {})}


def test_every_config_path_is_checked_when_the_experiment_loads(tmp_path, tokenizer_json):
    good = write_corpus(tmp_path / "c", n_files=1, docs_per_file=10)[0]
    load_experiment(_experiment(tmp_path, _local([good], {"kind": "hf", "name": str(tokenizer_json), "eos_token": EOS})))
    for dataset, eval_cfg, named in [
        (_local([tmp_path / "c" / "missing.txt"]), {}, "missing.txt"),
        (_local([good], {"kind": "hf", "name": str(tmp_path / "tok.json")}), {}, "tok.json"),
        (_local([good]), {"task_dirs": [str(tmp_path / "no_tasks")]}, "no_tasks"),
        (_local([good]), {"task_dirs": [str(good)]}, "is not a folder"),
    ]:
        with pytest.raises(ConfigError) as err:
            load_experiment(_experiment(tmp_path, dataset, **eval_cfg))
        assert named in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------- tokenizers users bring

def test_tokenizer_from_a_file_a_folder_or_a_hub_name(tmp_path, tokenizer_json, monkeypatch):
    from tokenizers import Tokenizer

    files = write_corpus(tmp_path / "c", n_files=1, docs_per_file=12)
    raw_tok = Tokenizer.from_file(str(tokenizer_json))
    eos_id = raw_tok.token_to_id(EOS)
    # a bare tokenizer.json declares no EOS: the error lists its special tokens
    with pytest.raises(ValueError, match=r"defines no eos_token .* set tokenizer.eos_token to one of its special "
                                         r"tokens: \['<\|endoftext\|>', '<\|padding\|>'\]"):
        build_tokenizer(_local(files, {"kind": "hf", "name": str(tokenizer_json)}), tmp_path / "d0")
    with pytest.raises(ValueError, match="tokenizer.eos_token '</s>' is not a token"):
        build_tokenizer(_local(files, {"kind": "hf", "name": str(tokenizer_json), "eos_token": "</s>"}), tmp_path / "d0")
    # a file and a folder holding only that file, with the EOS named in the config
    for name, out in ((tokenizer_json, tmp_path / "d1"), (tokenizer_json.parent, tmp_path / "d2")):
        index = prepare_dataset(_local(files, {"kind": "hf", "name": str(name), "eos_token": EOS}), out)
        assert index["eos_id"] == eos_id and index["vocab_size"] == raw_tok.get_vocab_size()
        tok = load_tokenizer(out)
        assert tok.eos_token == EOS and tok.encode("the winner", add_special_tokens=False) == raw_tok.encode("the winner").ids
        train = np.fromfile(out / "shards" / "train_00000.bin", dtype=np.uint16)
        n_docs = json.loads((out / "raw" / "manifest.json").read_text())["train"]["num_documents"]
        assert int((train == eos_id).sum()) == n_docs  # every document ends with the configured EOS
    assert (tmp_path / "d1/shards/train_00000.bin").read_bytes() == (tmp_path / "d2/shards/train_00000.bin").read_bytes()
    # a hub name goes to the hub at the commit its revision resolves to (the resolver and the hub
    # stood in for by a fixed commit and the local folder: no network here; tests/test_hub.py)
    from transformers import AutoTokenizer

    from pathmoe import hub

    commit = "c" * 40
    monkeypatch.setattr(hub, "resolve_commit", lambda kind, repo, rev: commit if (kind, repo, rev) == (
        "model", "EleutherAI/gpt-neox-20b", "v1.0") else pytest.fail(f"unexpected resolve {kind} {repo} {rev}"))
    asked = []
    real = AutoTokenizer.from_pretrained
    monkeypatch.setattr(AutoTokenizer, "from_pretrained",
                        lambda name, revision=None, **kw: asked.append((name, revision)) or real(str(tmp_path / "d1" / "tokenizer")))
    build_tokenizer(_local(files, {"kind": "hf", "name": "EleutherAI/gpt-neox-20b", "revision": "v1.0"}), tmp_path / "d3")
    assert asked == [("EleutherAI/gpt-neox-20b", commit)] and load_tokenizer(tmp_path / "d3").eos_token == EOS
    stamp = json.loads((tmp_path / "d3/tokenizer/pathmoe_build.json").read_text())
    assert stamp["hub"] == [{"kind": "model", "repo": "EleutherAI/gpt-neox-20b", "revision": "v1.0", "commit": commit}]
    with pytest.raises(ValueError, match="tokenizer.revision applies to hub names only"):
        validate_dataset_config(_local(files, {"kind": "hf", "name": str(tokenizer_json), "revision": "main"}))


@pytest.mark.parametrize("damage", ["not_json", "not_a_tokenizer", "bad_config"])
def test_broken_tokenizer_file_is_one_line_naming_it(damage, tmp_path, tokenizer_json, capsys):
    files = write_corpus(tmp_path / "c", n_files=1, docs_per_file=12)
    folder = tmp_path / "tok"
    shutil.copytree(tokenizer_json.parent, folder)
    bad = folder / ("tokenizer_config.json" if damage == "bad_config" else "tokenizer.json")
    bad.write_text({"not_json": "<html>rate limited</html>", "not_a_tokenizer": '{"model": {"type": "Nope"}}',
                    "bad_config": '{"eos_token": '}[damage])
    (tmp_path / "cfg.json").write_text(json.dumps(_local(files, {"kind": "hf", "name": str(folder), "eos_token": EOS})))
    assert main(["data", "tokenizer", "--dataset-config", str(tmp_path / "cfg.json"), "--out", str(tmp_path / "d")]) == 2
    err = _error_line(capsys.readouterr().err)
    assert repr(str(bad)) in err and ("not a valid tokenizer.json" in err or "not valid JSON" in err), err


# ---------------------------------------------------------------- failing steps keep the built data

def test_failing_data_steps_leave_the_built_data_intact(tmp_path, tokenizer_json, monkeypatch):
    files = write_corpus(tmp_path / "c", n_files=2, docs_per_file=15)
    cfg = _local(files)
    out = tmp_path / "d"
    prepare_dataset(cfg, out)
    before = _snapshot(out)
    # fetch: a source turned binary
    original = files[1].read_bytes()
    files[1].write_bytes(original[:200] + b"\x00\x00\x00" + original[200:])
    with pytest.raises(ValueError, match="contains NUL bytes"):
        fetch_documents(cfg, out)
    assert _snapshot(out) == before
    files[1].write_bytes(original)
    # tokenizer: a broken tokenizer file
    bad = tmp_path / "broken" / "tokenizer.json"
    bad.parent.mkdir()
    bad.write_text("{")
    with pytest.raises(ValueError, match="not a valid tokenizer.json"):
        build_tokenizer({**cfg, "tokenizer": {"kind": "hf", "name": str(bad), "eos_token": EOS}}, out)
    assert _snapshot(out) == before
    # tokenize: a rebuild for another tokenizer that dies half way leaves the old shards and index
    other = {**cfg, "tokenizer": {"kind": "hf", "name": str(tokenizer_json), "eos_token": EOS}, "shard_tokens": 2000}
    build_tokenizer(other, out)
    calls = []
    orig = shards_mod.TokenStream.take

    def crash_on_third(self, n):  # noqa: ANN001, ANN202
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return orig(self, n)

    monkeypatch.setattr(shards_mod.TokenStream, "take", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        tokenize_to_shards(other, out)
    now = _snapshot(out)
    assert {k: v for k, v in now.items() if k.startswith("shards/")} == {k: v for k, v in before.items() if k.startswith("shards/")}
    monkeypatch.setattr(shards_mod.TokenStream, "take", orig)
    index = tokenize_to_shards(other, out)  # resumes the staged build, then swaps it in
    assert index["eos_id"] == load_tokenizer(out).eos_token_id and not (out / "shards.new").exists()
    assert json.loads((out / "shards/index.json").read_text()) == index


def test_editing_a_source_in_place_refetches_and_changes_the_data_identity(tmp_path):
    files = write_corpus(tmp_path / "c", n_files=2, docs_per_file=15)
    cfg = _local(files)
    out = tmp_path / "d"
    prepare_dataset(cfg, out)
    first = dataset_identity(out)
    man = json.loads((out / "raw/manifest.json").read_text())
    assert [s["path"] for s in man["sources"]] == [str(f) for f in files]
    assert json.loads((out / "shards/index.json").read_text())["sources"] == man["sources"]
    prepare_dataset(cfg, out)
    assert dataset_identity(out) == first  # nothing changed: same identity
    files[0].write_text(files[0].read_text().replace("winner", "champion"))  # same config, edited corpus
    prepare_dataset(cfg, out)
    assert "champion" in (out / "raw/train.jsonl").read_text() + (out / "raw/val.jsonl").read_text()
    assert dataset_identity(out) != first


# ---------------------------------------------------------------- evaluation fits the model

def test_offline_tasks_fit_the_models_context_and_count_what_was_cut(tmp_path):
    from pathmoe.eval import build_offline_tasks

    files = write_corpus(tmp_path / "c", n_files=1, docs_per_file=60)
    prepare_dataset({**_local(files), "validation_documents": 40}, tmp_path / "d")
    tok = load_tokenizer(tmp_path / "d")
    max_length = 48
    out = build_offline_tasks(tmp_path / "d", tmp_path / "tasks", seed=3, n_examples=30, max_length=max_length)
    fit = json.loads((out / "fit.json").read_text())
    assert fit["max_length"] == max_length
    n_tokens = lambda text: len(tok.encode(text, add_special_tokens=False))  # noqa: E731
    for name in ("offline_mc", "offline_next", "offline_cloze"):
        rows = [json.loads(line) for line in (out / f"{name}.jsonl").read_text().splitlines()]
        answers = [[" " + c for c in r["choices"]] if "choices" in r else [" " + r["target"]] for r in rows]
        longest = max(n_tokens(r["context"] + a) for r, ans in zip(rows, answers) for a in ans)
        assert longest <= max_length + 1, (name, longest)  # the model reads all but the last token
        counts = fit["tasks"][name]
        assert counts["examples"] == len(rows) and counts["truncated_examples"] > 0  # 64-word contexts get cut
    unbounded = build_offline_tasks(tmp_path / "d", tmp_path / "tasks2", seed=3, n_examples=30)
    rows = [json.loads(line) for line in (unbounded / "offline_mc.jsonl").read_text().splitlines()]
    assert max(n_tokens(r["context"] + " " + c) for r in rows for c in r["choices"]) > max_length + 1  # the bound matters


def _tiny_model(vocab_size: int, max_seq_len: int):
    from pathmoe.model import PathMoEConfig, PathMoEForCausalLM

    torch.manual_seed(0)
    return PathMoEForCausalLM(PathMoEConfig(vocab_size=vocab_size, d_model=32, n_layers=2, n_heads=2, n_kv_heads=1,
                                            n_experts=4, top_k=2, expert_hidden=32, max_seq_len=max_seq_len)).eval()


def test_lm_eval_task_with_an_overlong_answer_is_scored_without_it(tmp_path, tokenizer_json):
    """A task folder (eval.task_dirs) whose one answer is longer than the model's context: lm-eval
    would stop on a bare assertion; the example is skipped and counted, the rest scored exactly."""
    from pathmoe.eval.harness import check_tasks, run_tasks

    tok_dir = tmp_path / "tok"
    shutil.copytree(tokenizer_json.parent, tok_dir)
    build_tokenizer(_local(write_corpus(tmp_path / "c", 1, 12), {"kind": "hf", "name": str(tok_dir), "eos_token": EOS}),
                    tmp_path / "d")
    tokenizer = load_tokenizer(tmp_path / "d")
    max_length = 128
    rows = mc_examples(12, long_answer_words=150, long_context_words=120)
    tasks = write_task_dir(tmp_path / "lab_tasks", rows)
    check_tasks(["lab_mc"], [str(tasks)])
    with pytest.raises(ValueError, match="unknown task"):
        check_tasks(["lab_mc"])
    model = _tiny_model(len(tokenizer), max_length)
    got = {(r["task"], r["metric"]): r["value"] for r in run_tasks(model, tokenizer, ["lab_mc"], batch_size=8,
                                                                     include_path=[str(tasks)])}
    assert got[("lab_mc", "skipped_examples")] == 1 and got[("lab_mc", "examples")] == len(rows) - 1
    assert got[("lab_mc", "truncated_examples")] == 1
    kept = [r for r in rows if len(r["choices"][0].split()) < 150]
    acc, acc_norm = direct_mc_scores(model, tokenizer, kept, max_length)
    assert got[("lab_mc", "acc")] == pytest.approx(acc, abs=1e-9)
    assert got[("lab_mc", "acc_norm")] == pytest.approx(acc_norm, abs=1e-9)
