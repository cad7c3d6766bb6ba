"""Evaluation stage end to end: a tiny PathMoE trained here (plain torch loop, < 60 s on 1 core)
is scored through the real lm-eval harness on the offline tasks, and `evaluate_run` turns its
exports into records + a selection. Properties asserted: untrained ~ chance, trained clearly above;
perplexity equals its closed form; resume skips finished checkpoints; bad input writes nothing.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pathmoe.eval import (
    RECORD_COLUMNS, build_offline_tasks, collect_records, evaluate_run, run_tasks, validation_perplexity,
)
from pathmoe.eval import run as run_mod

SEQ_LEN = 128
TRAIN_STEPS = 250
N_EXAMPLES = 200


def _model_config(vocab_size: int):
    from pathmoe.model import PathMoEConfig

    return PathMoEConfig(vocab_size=vocab_size, d_model=128, n_layers=2, n_heads=4, n_kv_heads=2, n_experts=4,
                         top_k=2, expert_hidden=256, max_seq_len=SEQ_LEN, router="linear", lbl_coef=0.01)


def _train(model, tokens: np.ndarray, steps: int, seed: int = 0) -> float:
    """Plain AdamW on random windows of the train split; returns the final loss."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.from_numpy(np.asarray(tokens).astype(np.int64))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20))
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        starts = torch.randint(0, len(ids) - SEQ_LEN - 1, (16,), generator=gen)
        x = torch.stack([ids[s:s + SEQ_LEN] for s in starts])  # [16, T]
        loss = model(x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    model.eval()
    return float(loss.detach())


def _export(model, tokenizer, path: Path) -> Path:
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


@pytest.fixture(scope="session")
def smoke(tmp_path_factory):
    """Builtin data dir + offline tasks + an untrained and a trained export (session-wide)."""
    from pathmoe.data import TokenShards, load_tokenizer, prepare_dataset
    from pathmoe.model import PathMoEForCausalLM

    root = tmp_path_factory.mktemp("eval_smoke")
    data_dir = root / "data" / "builtin"
    prepare_dataset({"source": {"kind": "builtin", "num_documents": 800, "seed": 0},
                     "tokenizer": {"kind": "bpe", "vocab_size": 1024}, "validation_documents": 100,
                     "num_workers": 1}, data_dir)
    tokenizer = load_tokenizer(data_dir / "tokenizer")
    shards = TokenShards(data_dir / "shards", "train")
    torch.manual_seed(0)
    model = PathMoEForCausalLM(_model_config(shards.vocab_size))
    untrained = _export(model, tokenizer, root / "untrained")
    t0 = time.perf_counter()
    final_loss = _train(model, shards.tokens, TRAIN_STEPS)
    train_s = time.perf_counter() - t0
    trained = _export(model, tokenizer, root / "trained")
    tasks = build_offline_tasks(data_dir, root / "tasks", seed=1234, n_examples=N_EXAMPLES)
    return {"root": root, "data_dir": data_dir, "tokenizer": tokenizer, "untrained": untrained, "trained": trained,
            "tasks": tasks, "final_loss": final_loss, "train_s": train_s}


def _scores(ckpt: Path, smoke: dict) -> dict[tuple[str, str], float]:
    from pathmoe.eval.checkpoint import load_checkpoint

    model, tok = load_checkpoint(ckpt, "cpu")
    rows = run_tasks(model, tok, ["offline_mc", "offline_next", "offline_cloze"], batch_size=32,
                     include_path=smoke["tasks"])
    return {(r["task"], r["metric"]): r["value"] for r in rows}


def test_offline_tasks_untrained_at_chance_trained_clearly_above(smoke):
    untrained = _scores(smoke["untrained"], smoke)
    trained = _scores(smoke["trained"], smoke)
    chance = 0.25
    print(f"train {smoke['train_s']:.1f}s loss {smoke['final_loss']:.3f}; untrained {untrained}; trained {trained}")
    # An untrained model cannot tell word order: never clearly above chance.
    assert untrained[("offline_mc", "acc_norm")] <= chance + 0.08
    assert untrained[("offline_cloze", "acc")] <= 0.01
    # A model trained for < 60 s knows word order (MC) and has learned the passages' words (cloze).
    assert trained[("offline_mc", "acc_norm")] >= chance + 0.15
    assert trained[("offline_mc", "acc")] >= chance + 0.15
    assert trained[("offline_cloze", "acc")] > untrained[("offline_cloze", "acc")]
    assert trained[("offline_cloze", "perplexity")] < untrained[("offline_cloze", "perplexity")] / 10
    # offline_next (the embedded default's selection task) runs as a 4-way multiple choice; its
    # distractors are fluent sentences of other stories, so nothing but the context gives the gold
    # away: an untrained model stays at chance. (This tiny model does not learn it either.)
    for scores in (untrained, trained):
        assert 0.0 <= scores[("offline_next", "acc")] <= 1.0 and 0.0 <= scores[("offline_next", "acc_norm")] <= 1.0
    assert abs(untrained[("offline_next", "acc_norm")] - chance) <= 0.1
    assert abs(untrained[("offline_next", "acc")] - chance) <= 0.1


class _ZeroLogits(torch.nn.Module):
    """A model whose logits are all zero: its perplexity is exactly the vocabulary size."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids):
        return type("Out", (), {"logits": torch.zeros(*input_ids.shape, self.vocab_size) + 0 * self.dummy})()


def test_load_checkpoint_loads_the_tokenizer_once(smoke, monkeypatch):
    from pathmoe.eval import checkpoint

    loads = []
    real = checkpoint.load_tokenizer_for
    monkeypatch.setattr(checkpoint, "load_tokenizer_for", lambda *a: loads.append(a) or real(*a))
    _, tok = checkpoint.load_checkpoint(smoke["trained"], "cpu")
    assert len(loads) == 1 and len(tok) == len(smoke["tokenizer"])


def test_validation_perplexity_closed_forms(smoke):
    from pathmoe.eval.checkpoint import load_checkpoint
    from pathmoe.data import TokenShards

    shards = smoke["data_dir"] / "shards"
    vocab = TokenShards(shards, "val").vocab_size
    # Uniform prediction: ppl == V exactly, whatever the window layout (partial last window too).
    assert validation_perplexity(_ZeroLogits(vocab), shards, SEQ_LEN, 1000, batch_size=3, device="cpu") == pytest.approx(vocab, rel=1e-6)

    model, _ = load_checkpoint(smoke["trained"], "cpu")
    n_windows = 4
    ppl = validation_perplexity(model, shards, SEQ_LEN, n_windows * SEQ_LEN, batch_size=2, device="cpu")
    # Same tokens in other batch shapes -> same token-weighted number (deterministic, no overlap).
    assert validation_perplexity(model, shards, SEQ_LEN, n_windows * SEQ_LEN, batch_size=4) == pytest.approx(ppl, rel=1e-5)
    # Closed form: exp of the model's own mean LM loss over the same non-overlapping windows.
    toks = torch.from_numpy(np.asarray(TokenShards(shards, "val").tokens[: n_windows * SEQ_LEN + 1]).astype(np.int64))
    x = torch.stack([toks[i * SEQ_LEN:(i + 1) * SEQ_LEN + 1] for i in range(n_windows)])  # [4, T+1]
    with torch.no_grad():
        logits = model(x[:, :-1]).logits
    ref = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1))
    assert ppl == pytest.approx(math.exp(ref.item()), rel=1e-5)
    assert 1.0 < ppl < vocab / 10  # trained: far better than uniform


def _make_run(smoke: dict, name: str, steps: dict[int, str]) -> dict:
    run_dir = smoke["root"] / "runs" / name
    for step, which in steps.items():
        shutil.copytree(smoke[which], run_dir / "hf" / f"step_{step}")
    (run_dir / "train_summary.json").write_text(json.dumps(
        {"steps": max(steps), "tokens_per_s": 5000.0, "tokens_per_s_per_gpu": 2500.0, "peak_mem_gib": 1.5,
         "final_loss": smoke["final_loss"], "world_size": 2, "exports": [], "wall_s": 10.0, "device": "cpu"}))
    cfg = {"run": name, "variant": "pathb4", "scale": "tiny", "dataset": "builtin", "seed": 0,
           "run_dir": str(run_dir), "data_dir": str(smoke["data_dir"]), "model": {},
           "train": {"seq_len": SEQ_LEN, "precision": "fp32"},
           "eval": {"tasks": ["offline_mc", "offline_cloze"], "num_fewshot": {}, "batch_size": 32, "limit": 60,
                    "device": "cpu", "ppl_tokens": 2 * SEQ_LEN, "offline_examples": 100}}
    (run_dir / "run_config.json").write_text(json.dumps(cfg))
    return cfg


def test_evaluate_run_records_selection_and_resume(smoke, monkeypatch):
    cfg = _make_run(smoke, "pathb4", {0: "untrained", 250: "trained"})
    run_dir = Path(cfg["run_dir"])
    out = evaluate_run(run_dir / "run_config.json")
    records = pd.read_csv(out)
    assert list(records.columns) == list(RECORD_COLUMNS)
    assert set(records["step"]) == {0, 250}
    assert (records["run"] == "pathb4").all() and (records["variant"] == "pathb4").all()
    thr = records[records["task"] == "throughput_ktok_s"]
    assert thr["value"].tolist() == [2.5] and thr["step"].tolist() == [250]  # 2500 tok/s/GPU = 2.5 k
    assert records[records["task"] == "peak_mem_gib"]["value"].tolist() == [1.5]
    ppl = records[records["task"] == "val_ppl"].set_index("step")["value"]
    assert ppl[250] < ppl[0] / 10

    sel = json.loads((run_dir / "eval" / "selected.json").read_text())
    acc = records[((records["task"] == "offline_mc") & (records["metric"] == "acc_norm"))
                  | ((records["task"] == "offline_cloze") & (records["metric"] == "acc"))]
    avg = acc.groupby("step")["value"].mean()
    assert sel["step"] == 250 and sel["avg"] == pytest.approx(avg[250])
    assert sel["std_final5"] == pytest.approx(float(avg.std(ddof=1)))
    assert sel["checkpoint"] == str(run_dir / "hf" / "step_250")
    _check_lm_eval_results(run_dir, records, [0, 250])

    # Resume: finished checkpoints are never re-evaluated; only a new export is.
    calls = []
    real = run_mod.evaluate_checkpoint
    monkeypatch.setattr(run_mod, "evaluate_checkpoint", lambda ckpt, *a: calls.append(ckpt.name) or real(ckpt, *a))
    shutil.copytree(smoke["trained"], run_dir / "hf" / "step_300")
    evaluate_run(cfg)
    assert calls == ["step_300"]
    again = pd.read_csv(out)
    pd.testing.assert_frame_equal(again[again["step"] == 0].reset_index(drop=True),
                                  records[records["step"] == 0].reset_index(drop=True))

    _check_lm_eval_results(run_dir, again, [0, 250, 300])  # the cached steps' lm-eval results are kept too

    merged = collect_records([run_dir, run_dir], smoke["root"] / "results" / "records.csv")
    assert len(pd.read_csv(merged)) == 2 * len(again)


def _check_lm_eval_results(run_dir: Path, records: pd.DataFrame, steps: list[int]) -> None:
    """eval/lm_eval_results.json holds lm-eval's own results file content for every checkpoint: the
    task configs (with their data files), versions, shots, sample counts, and the scores in records.csv."""
    kept = json.loads((run_dir / "eval" / "lm_eval_results.json").read_text())
    assert kept["run"] == run_dir.name and [c["step"] for c in kept["checkpoints"]] == steps
    for entry in kept["checkpoints"]:
        assert entry["checkpoint"] == str(run_dir / "hf" / f"step_{entry['step']}")
        (res,) = entry["lm_eval"]  # one simple_evaluate call: both tasks zero-shot
        assert set(res["configs"]) == {"offline_mc", "offline_cloze"}
        assert res["configs"]["offline_mc"]["dataset_kwargs"]["data_files"]["test"].endswith("offline_mc.jsonl")
        assert res["versions"] == {"offline_mc": 1.0, "offline_cloze": 1.0} and res["n-shot"]["offline_mc"] == 0
        assert res["config"]["limit"] == 60 or res["config"]["samples"] is not None
        rows = records[records["step"] == entry["step"]].set_index(["task", "metric"])["value"]
        for task in ("offline_mc", "offline_cloze"):
            assert res["n-samples"][task]["effective"] == rows[(task, "examples")]
            assert res["results"][task]["acc,none"] == pytest.approx(rows[(task, "acc")])


def test_cache_is_redone_for_new_weights_or_settings(smoke, monkeypatch):
    """A step's cached rows belong to the export and eval settings that produced them: a retrained
    export at the same step, or an edited setting that changes scores, is evaluated again;
    settings that only change speed (batch_size, device) keep the cache."""
    cfg = _make_run(smoke, "stale", {10: "untrained", 20: "trained"})
    run_dir = Path(cfg["run_dir"])
    calls: list[str] = []

    def fake_evaluate(ckpt, *_):  # the numbers do not matter here, only which exports get scored
        calls.append(ckpt.name)
        return ([{"task": "val_ppl", "metric": "ppl", "value": float(len(calls)), "stderr": math.nan},
                 {"task": "offline_mc", "metric": "acc_norm", "value": 0.5, "stderr": 0.01},
                 {"task": "offline_cloze", "metric": "acc", "value": 0.1, "stderr": 0.01}],
                [{"results": {"call": len(calls)}}])

    def ppl_of_step_10() -> float:
        records = pd.read_csv(run_dir / "eval" / "records.csv")
        return records[(records["task"] == "val_ppl") & (records["step"] == 10)]["value"].item()

    monkeypatch.setattr(run_mod, "evaluate_checkpoint", fake_evaluate)
    evaluate_run(cfg)
    assert calls == ["step_10", "step_20"] and ppl_of_step_10() == 1.0
    (run_dir / "eval" / "step_20.lm_eval.json").unlink()  # lm-eval's results lost: the step is redone
    evaluate_run(cfg)
    assert calls == ["step_10", "step_20", "step_20"]
    calls.pop()
    evaluate_run({**cfg, "eval": {**cfg["eval"], "batch_size": 7}})  # speed only: cached
    assert calls == ["step_10", "step_20"]

    shutil.rmtree(run_dir / "hf" / "step_10")  # retrained: same step, same size, other weights
    shutil.copytree(smoke["trained"], run_dir / "hf" / "step_10")
    evaluate_run(cfg)
    assert calls[2:] == ["step_10"] and ppl_of_step_10() == 3.0  # the new model's number, not the old one

    evaluate_run({**cfg, "eval": {**cfg["eval"], "ppl_tokens": 4 * SEQ_LEN}})
    assert calls[3:] == ["step_10", "step_20"]
    evaluate_run({**cfg, "eval": {**cfg["eval"], "ppl_tokens": 4 * SEQ_LEN, "offline_seed": 7}})
    assert calls[5:] == ["step_10", "step_20"]


def test_cli_run_and_ppl(smoke, capsys):
    from pathmoe.cli import main

    cfg = _make_run(smoke, "cli", {5: "trained"})
    assert main(["eval", "run", "--run-config", str(Path(cfg["run_dir"]) / "run_config.json")]) == 0
    assert json.loads((Path(cfg["run_dir"]) / "eval" / "selected.json").read_text())["step"] == 5
    capsys.readouterr()
    assert main(["eval", "ppl", "--checkpoint", str(smoke["trained"]), "--shards", str(smoke["data_dir"] / "shards"),
                 "--tokens", str(2 * SEQ_LEN), "--device", "cpu"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    records = pd.read_csv(Path(cfg["run_dir"]) / "eval" / "records.csv")
    assert printed["val_ppl"] == pytest.approx(records[records["task"] == "val_ppl"]["value"].item(), rel=1e-6)


@pytest.mark.parametrize("breakage, match", [
    ("no_weights", "missing model.safetensors"),
    ("no_config", "missing config.json"),
    ("unknown_task", "unknown task"),
    ("vocab", "does not match vocab_size"),
    ("no_shards", "no shard index"),
])
def test_bad_input_fails_in_one_line_and_writes_nothing(smoke, breakage, match):
    cfg = _make_run(smoke, f"bad_{breakage}", {10: "trained", 20: "trained"})
    ckpt = Path(cfg["run_dir"]) / "hf" / "step_20"
    if breakage == "no_weights":
        (ckpt / "model.safetensors").unlink()
    elif breakage == "no_config":
        (ckpt / "config.json").unlink()
    elif breakage == "unknown_task":
        cfg["eval"]["tasks"] = ["offline_mc", "no_such_task_xyz"]
    elif breakage == "vocab":
        conf = json.loads((ckpt / "config.json").read_text())
        conf["vocab_size"] = 4096
        (ckpt / "config.json").write_text(json.dumps(conf))
    elif breakage == "no_shards":
        cfg["data_dir"] = str(Path(cfg["run_dir"]) / "no_data")
    with pytest.raises((ValueError, FileNotFoundError), match=match) as err:
        evaluate_run(cfg)
    assert "\n" not in str(err.value)
    assert not (Path(cfg["run_dir"]) / "eval").exists()


def test_stock_lm_eval_cli_scores_an_export(smoke, tmp_path):
    """`pathmoe eval lm-eval -- <lm-eval args>` is lm-eval's own CLI (`--model hf --model_args
    pretrained=<export>`) in a fresh process: it loads the export through transformers' Auto
    classes and gives the scores of our harness on the same local tasks."""
    import os
    import subprocess
    import sys

    from pathmoe.eval.checkpoint import load_checkpoint

    tasks, limit = ["offline_mc", "offline_cloze"], 40
    args = ["--model", "hf", "--model_args", f"pretrained={smoke['trained']},dtype=float32",
            "--tasks", ",".join(tasks), "--include_path", str(smoke["tasks"]), "--limit", str(limit),
            "--batch_size", "16", "--device", "cpu", "--output_path", str(tmp_path / "out")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"),
                                                         os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "pathmoe", "eval", "lm-eval", "--", *args], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (results_file,) = (tmp_path / "out").rglob("results_*.json")
    stock = json.loads(results_file.read_text())
    assert stock["config"]["model"] == "hf" and str(smoke["trained"]) in json.dumps(stock["config"]["model_args"])

    model, tok = load_checkpoint(smoke["trained"], "cpu")
    ours = {(r["task"], r["metric"]): r["value"]
            for r in run_tasks(model, tok, tasks, batch_size=16, limit=limit, include_path=smoke["tasks"])}
    for task in tasks:
        assert ours[(task, "skipped_examples")] == 0  # same documents (contexts cut from the left alike)
        assert stock["n-samples"][task]["effective"] == limit == ours[(task, "examples")]
        for metric in ("acc", "acc_norm") if task == "offline_mc" else ("acc",):
            assert stock["results"][task][f"{metric},none"] == pytest.approx(ours[(task, metric)], abs=1e-9)
    # a continuous score, which two different models or documents would not share by chance
    cloze_ppl = stock["results"]["offline_cloze"]["perplexity,none"]
    assert cloze_ppl == pytest.approx(ours[("offline_cloze", "perplexity")], rel=1e-6) and cloze_ppl > 1.0


def test_stock_lm_eval_cli_needs_arguments(capsys):
    from pathmoe.cli import main

    assert main(["eval", "lm-eval"]) == 2
    assert "no lm-eval arguments" in capsys.readouterr().err


def test_eval_job_log_is_quiet(smoke):
    """An eval job's log (stderr to a file, as a Snakemake job writes it): no progress-bar lines
    from transformers, datasets or lm-eval, and no warning repeated for every checkpoint."""
    import os
    import subprocess
    import sys

    cfg = _make_run(smoke, "quiet", {10: "trained", 20: "trained"})
    log = Path(cfg["run_dir"]) / "eval.log"
    env = {k: v for k, v in os.environ.items() if k not in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS",
                                                             "HF_DATASETS_DISABLE_PROGRESS_BARS")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"), env.get("PYTHONPATH", "")])
    with open(log, "w") as fh:
        proc = subprocess.run([sys.executable, "-m", "pathmoe", "eval", "run", "--run-config",
                               str(Path(cfg["run_dir"]) / "run_config.json")], stdout=fh, stderr=subprocess.STDOUT,
                              env=env, timeout=600)
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert "it/s]" not in text and "\r" not in text  # no progress bars
    for noise in ("Loading weights", "Running loglikelihood requests", "Generating test split",
                  "to instantiate a model of type", "model kwarg is not of type"):
        assert noise not in text, noise
    assert str(Path(cfg["run_dir"]) / "eval" / "records.csv") in text  # what the command prints is kept
