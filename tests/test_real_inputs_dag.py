"""The DAG on material a user brings: local text files, a tokenizer.json, a lab's own lm-eval task.

One tiny run trains on a local corpus (paragraphs split at whitespace-only lines) with a
`tokenizer.json` trained here, and is scored on a multiple-choice task from `eval.task_dirs`
whose one over-long answer must be skipped. Then, in order: the task's acc equals a direct
log-likelihood computation; editing a source file reruns exactly the jobs that read it and
training restarts from scratch with a notice (never resumes the old corpus's checkpoint); a
source turned binary fails its job with one line naming the file and leaves the built data as it
was; a missing file fails the config before any job starts.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from real_inputs import EOS, direct_mc_scores, mc_examples, train_tokenizer_json, write_corpus, write_task_dir

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # a few minutes on 2 CPU cores (two trainings through the DAG)

RUN = "indep_s0"
MAX_LEN = 128


def _config(base: Path) -> dict:
    return {
        "name": "real", "output_dir": "results/real", "report_dir": "results/real/reports", "seeds": [0],
        "defaults": {"scale": "tiny", "dataset": "corpus"},
        "scales": {"tiny": {"model": {"vocab_size": None, "d_model": 32, "n_layers": 2, "n_heads": 2, "n_kv_heads": 1,
                                      "n_experts": 4, "top_k": 2, "expert_hidden": 32, "max_seq_len": MAX_LEN}}},
        "datasets": {
            "corpus": {"source": {"kind": "local", "paths": [str(base / "corpus" / "*.txt")], "txt_mode": "paragraph"},
                       "tokenizer": {"kind": "hf", "name": str(base / "tok" / "tokenizer.json"), "eos_token": EOS},
                       "validation_documents": 10, "num_workers": 1},
            "other": {"source": {"kind": "local", "paths": [str(base / "other" / "*.txt")], "txt_mode": "paragraph"},
                      "tokenizer": {"kind": "bpe", "vocab_size": 400}, "validation_documents": 5, "num_workers": 1},
        },
        "variants": {"indep": {"label": "Indep-MoE", "router": "linear", "block_size": 1, "lbl_coef": 0.01}},
        "runs": {"indep": {"variant": "indep"}},
        "train": {"steps": 8, "micro_batch_size": 4, "global_batch_size": 4, "seq_len": 64, "warmup_steps": 1,
                  "log_every": 2, "ckpt_every": 4, "export_every": 8, "keep_exports": 1, "threads": 1},
        "eval": {"tasks": ["lab_mc"], "curve_tasks": [], "batch_size": 16, "ppl_tokens": 512,
                 "task_dirs": [str(base / "lab_tasks")]},
        "analysis": {"seq_len": 64},
    }


TARGETS = [f"results/real/runs/{RUN}/eval/records.csv", "results/real/data/other/shards/index.json"]


def snakemake(work: Path, *args: str, config: str = "real.yaml") -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work),
           "--configfile", str(work / config), "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1800)


def job_counts(dry_run_output: str) -> dict[str, int]:
    stats = dry_run_output[dry_run_output.index("Job stats:"):]
    return {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", stats, flags=re.M) if k != "total"}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.endswith(".prov.json")}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("real_dag")
    files = write_corpus(work / "corpus", n_files=2, docs_per_file=60, seed=1)
    write_corpus(work / "other", n_files=1, docs_per_file=20, seed=2)
    train_tokenizer_json(work / "tok" / "tokenizer.json", [f.read_text() for f in files], vocab_size=800)
    write_task_dir(work / "lab_tasks", mc_examples(16, seed=9, long_answer_words=200))
    (work / "real.yaml").write_text(yaml.safe_dump(_config(work)))
    res = snakemake(work, *TARGETS)
    assert res.returncode == 0, (res.stdout + res.stderr)[-5000:]
    return work


def test_lab_task_scored_through_the_dag_matches_direct_loglikelihood(work):
    from pathmoe.eval.checkpoint import load_checkpoint

    records = pd.read_csv(work / "results/real/runs" / RUN / "eval/records.csv")
    lab = records[records["task"] == "lab_mc"].set_index("metric")["value"]
    rows = [json.loads(line) for line in (work / "lab_tasks/lab_mc.jsonl").read_text().splitlines()]
    assert lab["skipped_examples"] == 1 and lab["examples"] == len(rows) - 1  # the 200-word answer
    model, tokenizer = load_checkpoint(work / "results/real/runs" / RUN / "hf/step_8", "cpu")
    kept = [r for r in rows if len(r["choices"][0].split()) < 200]
    acc, acc_norm = direct_mc_scores(model, tokenizer, kept, MAX_LEN)
    assert lab["acc"] == pytest.approx(acc, abs=1e-9) and lab["acc_norm"] == pytest.approx(acc_norm, abs=1e-9)
    # the run trained on the paragraphs of both files, with the configured EOS after each document
    man = json.loads((work / "results/real/data/corpus/raw/manifest.json").read_text())
    assert man["num_documents"] == 120 and len(man["sources"]) == 2


def test_editing_a_source_reruns_what_reads_it_and_restarts_training(work):
    run_dir = work / "results/real/runs" / RUN
    before = json.loads((run_dir / "train_summary.json").read_text())
    old_identity = (run_dir / "data_hash").read_text().strip()
    assert (run_dir / "ds_ckpt").is_dir() and before["resumed_from"] == 0
    other = snapshot(work / "results/real/data/other")
    source = work / "corpus" / "part_0.txt"
    source.write_text(source.read_text().replace("winner", "champion"))  # same config, edited corpus
    res = snakemake(work, "-n", *TARGETS)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout + res.stderr
    # the tokenizer is a local file, not trained on the corpus: its job does not rerun
    assert job_counts(out) == {"fetch_documents": 1, "tokenize": 1, "train": 1, "eval": 1}
    assert "dataset=other" not in out  # the other dataset reads no edited file
    res = snakemake(work, *TARGETS)
    assert res.returncode == 0, (res.stdout + res.stderr)[-5000:]
    log = (run_dir / "train.log").read_text()
    notice = [line for line in log.splitlines() if "starting from scratch" in line]
    assert len(notice) == 1 and "data changed (dataset identity" in notice[0], log[-2000:]
    after = json.loads((run_dir / "train_summary.json").read_text())
    assert after["resumed_from"] == 0  # not step 4 of the old corpus's checkpoint
    assert (run_dir / "data_hash").read_text().strip() != old_identity
    assert "champion" in (work / "results/real/data/corpus/raw/train.jsonl").read_text() + \
        (work / "results/real/data/corpus/raw/val.jsonl").read_text()
    assert snapshot(work / "results/real/data/other") == other
    # the tokenizer file is an input too: editing it reruns its job and what reads the tokenizer
    tok = work / "tok" / "tokenizer.json"
    original = tok.read_bytes()
    tok.write_bytes(original + b"\n")
    try:
        res = snakemake(work, "-n", *TARGETS)
    finally:
        tok.write_bytes(original)
    assert res.returncode == 0, res.stderr[-3000:]
    assert job_counts(res.stdout + res.stderr) == {"build_tokenizer": 1, "tokenize": 1, "train": 1, "eval": 1}


def test_a_source_turned_binary_fails_its_job_and_keeps_the_built_data(work):
    data = work / "results/real/data/corpus"
    before = snapshot(data)
    source = work / "corpus" / "part_1.txt"
    original = source.read_bytes()
    source.write_bytes(original[:500] + b"\x00" * 32 + original[500:])
    try:
        res = snakemake(work, *TARGETS)
    finally:
        source.write_bytes(original)
    assert res.returncode != 0
    errors = [line for line in (res.stdout + res.stderr).splitlines() if line.startswith("pathmoe data: error:")]
    line = original[:500].count(b"\n") + 1
    expected = (f"pathmoe data: error: source file {str(source)!r}: contains NUL bytes (line {line}); "
                "it is a binary file, not text")
    assert errors == [expected]
    assert snapshot(data) == before  # raw/, tokenizer/, shards/: every byte as before the failed job


def test_a_missing_file_fails_the_config_before_any_job(work):
    cfg = yaml.safe_load((work / "real.yaml").read_text())
    cfg["datasets"]["corpus"]["source"]["paths"] = [str(work / "corpus" / "part_9.txt")]
    (work / "missing.yaml").write_text(yaml.safe_dump(cfg))
    before = snapshot(work / "results/real/data")
    res = snakemake(work, *TARGETS, config="missing.yaml")
    assert res.returncode != 0
    assert (f"pathmoe: bad config: datasets.corpus: dataset config: source.paths: no file matches "
            f"{str(work / 'corpus' / 'part_9.txt')!r}") in res.stderr
    assert "rule " not in res.stdout + res.stderr  # no job was planned, let alone started
    assert snapshot(work / "results/real/data") == before
