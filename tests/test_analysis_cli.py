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


def test_cli_checks_p_and_the_checkpoint_before_loading(setup, capsys):
    root, ckpt, shards, _ = setup
    common = ["--shards", str(shards), "--tokens", "256", "--seq-len", "32", "--device", "cpu"]
    out = root / "r.json"
    assert main(["analyze", "robustness", "--checkpoint", str(root / "nosuch"), *common, "--p", "0", "2",
                 "--out", str(out)]) != 0
    assert "p=2.0: allowed are values in [0, 1]" in capsys.readouterr().err
    partial = root / "partial"
    partial.mkdir()
    (partial / "config.json").write_text((ckpt / "config.json").read_text())
    assert main(["analyze", "robustness", "--checkpoint", str(partial), *common, "--out", str(out)]) != 0
    assert "missing model.safetensors" in capsys.readouterr().err
    assert not out.exists()


def test_val_tokens_reads_only_the_requested_window_across_shards(tmp_path, monkeypatch):
    from pathmoe.analysis.suite import val_tokens
    from pathmoe.data import TokenShards

    shards = tmp_path / "shards"
    shards.mkdir()
    parts = [np.arange(0, 100, dtype=np.uint16), np.arange(100, 250, dtype=np.uint16)]
    split = []
    for i, part in enumerate(parts):
        part.tofile(shards / f"val_{i:05d}.bin")
        split.append({"file": f"val_{i:05d}.bin", "num_tokens": int(part.size), "sha256": sha256_file(shards / f"val_{i:05d}.bin")})
    atomic_write_json(shards / "index.json", {"dtype": "uint16", "vocab_size": 256, "eos_id": 0, "tokenizer": "test",
                                              "splits": {"val": split}})
    # `.tokens` concatenates the whole split; the analysis token set must not need it
    monkeypatch.setattr(TokenShards, "tokens", property(lambda self: pytest.fail("read the whole split")))
    np.testing.assert_array_equal(val_tokens(shards, 120), np.arange(120))
    np.testing.assert_array_equal(val_tokens(shards, 1000), np.arange(250))  # fewer than asked: all, with a warning


def test_dag_parse_imports_of_the_analysis_package_stay_light():
    """The Snakefile imports pathmoe.analysis.suite to list the analyses: no torch, scipy or tqdm."""
    import subprocess
    import sys

    code = ("import sys, pathmoe.analysis, pathmoe.analysis.suite; "
            "print(sorted(m for m in ('torch', 'scipy', 'tqdm', 'transformers') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]"


def test_each_analysis_records_and_prints_the_tokens_it_used(setup, capsys):
    """Asked for more tokens than the val split holds, every analysis says how many it really used:
    the whole seq_len windows of the split (a short tail is dropped)."""
    root, ckpt, shards, n_val = setup
    out = root / "counted"
    seq_len = 48
    used = (n_val // seq_len) * seq_len
    assert used < n_val + 5000
    common = ["--checkpoint", str(ckpt), "--shards", str(shards), "--tokens", str(n_val + 5000),
              "--seq-len", str(seq_len), "--device", "cpu"]
    capsys.readouterr()
    assert main(["analyze", "traces", *common, "--out", str(out / "traces.npz")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["num_tokens"] == used
    for kind in ("paths", "consistency", "entropy", "specialization", "top-paths"):
        target = out / f"{kind}.json"
        assert main(["analyze", kind, "--traces", str(out / "traces.npz"), "--tokenizer", str(ckpt),
                     "--out", str(target)]) == 0
        printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert printed == {"out": str(target), "num_tokens": used}, kind
        assert json.loads(target.read_text())["num_tokens"] == used, kind
    assert main(["analyze", "robustness", *common, "--p", "0", "1", "--out", str(out / "robustness.json")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["num_tokens"] == used
    assert json.loads((out / "robustness.json").read_text())["num_tokens"] == used
