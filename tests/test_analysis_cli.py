"""`pathmoe analyze all` end to end on a tiny checkpoint, shards and tokenizer built here (no network)."""

import json

import numpy as np
import pytest
import torch

from pathmoe.cli import main
from pathmoe.io import atomic_write_json, sha256_file
from pathmoe.model import PathMoEConfig, PathMoEForCausalLM

torch.set_num_threads(1)
TEXT = ("John said that the new minister quickly announced 3 plans on Monday. "
        "However, the American players were running home in the morning, and she asked why. ") * 40


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    root = tmp_path_factory.mktemp("analysis")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([TEXT], trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")
    ids = np.array(tok.encode(TEXT).ids, dtype=np.uint16)
    shards = root / "data" / "shards"
    shards.mkdir(parents=True)
    ids.tofile(shards / "val_00000.bin")
    ids.tofile(shards / "train_00000.bin")
    entry = lambda f: [{"file": f, "num_tokens": int(ids.size), "sha256": sha256_file(shards / f)}]  # noqa: E731
    atomic_write_json(shards / "index.json", {"dtype": "uint16", "vocab_size": tok.get_vocab_size(), "eos_id": 0,
                      "tokenizer": "test", "splits": {"train": entry("train_00000.bin"),
                                                      "val": entry("val_00000.bin")}})
    torch.manual_seed(0)
    cfg = PathMoEConfig(vocab_size=tok.get_vocab_size(), d_model=32, n_layers=4, n_heads=4, n_kv_heads=2,
                        n_experts=8, top_k=2, expert_hidden=16, max_seq_len=64)
    ckpt = root / "ckpt"
    PathMoEForCausalLM(cfg).save_pretrained(ckpt)
    hf_tok.save_pretrained(ckpt)
    return root, ckpt, shards, ids.size


def test_analyze_all_writes_every_contract_record(setup):
    root, ckpt, shards, _ = setup
    out = root / "analysis"
    assert main(["analyze", "all", "--checkpoint", str(ckpt), "--shards", str(shards), "--tokens", "1024",
                 "--seq-len", "32", "--device", "cpu", "--p", "0", "1", "--out-dir", str(out)]) == 0
    paths = json.loads((out / "paths.json").read_text())
    assert paths["num_tokens"] == 1024 and paths["num_layers"] == 4
    assert 0 <= paths["routing_entropy_bits"] <= np.log2(1024)
    assert paths["effective_path_space"] == pytest.approx(2 ** paths["routing_entropy_bits"])
    assert paths["coverage"]["fraction"][-1] == pytest.approx(1.0)
    cons = json.loads((out / "consistency.json").read_text())
    assert cons["windows"] == [2, 3, 4] and len(cons["path_consistency"]) == 3
    assert sum(cons["run_lengths"]["fraction"]) == pytest.approx(1.0)
    ent = json.loads((out / "entropy.json").read_text())
    assert ent["layers"] == [0, 1, 2, 3] and all(0 <= e <= 3 for e in ent["mean_entropy_bits"])
    spec = json.loads((out / "specialization.json").read_text())
    assert spec["paths"] and all(sum(r["categories"].values()) == pytest.approx(1.0) for r in spec["paths"])
    top = json.loads((out / "top_paths.json").read_text())
    assert top["counts"] == sorted(top["counts"], reverse=True) and sum(top["counts"]) <= 1024
    rob = json.loads((out / "robustness.json").read_text())
    assert rob["p"] == [0.0, 1.0] and rob["degradation_pct"][0] == 0.0


def test_single_analysis_commands_and_errors(setup, capsys):
    root, ckpt, shards, _ = setup
    traces = root / "t.npz"
    assert main(["analyze", "traces", "--checkpoint", str(ckpt), "--shards", str(shards), "--tokens", "256",
                 "--seq-len", "32", "--device", "cpu", "--out", str(traces)]) == 0
    assert main(["analyze", "top-paths", "--traces", str(traces), "--n", "3", "--out", str(root / "tp.json")]) == 0
    assert len(json.loads((root / "tp.json").read_text())["paths"]) <= 3
    capsys.readouterr()
    # the CLI turns library errors into one line on stderr and a non-zero exit status
    assert main(["analyze", "paths", "--traces", str(root / "missing.npz"), "--out", str(root / "x.json")]) != 0
    assert "traces file not found" in capsys.readouterr().err
    assert main(["analyze", "specialization", "--traces", str(traces), "--out", str(root / "s.json")]) != 0
    assert "pass --tokenizer DIR" in capsys.readouterr().err
    assert not (root / "x.json").exists() and not (root / "s.json").exists()
