"""Fast unit tests of the evaluation stage (no model): metrics mapping, offline task data,
lm-eval result parsing, selection rule, record collection, config checks, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from pathmoe.data import generate_documents
from pathmoe.eval import PAPER_METRICS, RECORD_COLUMNS, build_offline_tasks, collect_records, select_checkpoint
from pathmoe.eval.harness import _parse_results
from pathmoe.eval.metrics import EXTRA_16B_TASKS, OFFLINE_TASKS, ZERO_SHOT_TASKS
from pathmoe.eval.offline import MAX_CONTEXT_WORDS, split_sentences
from pathmoe.eval.records import write_csv
from pathmoe.eval.run import eval_settings


def test_paper_metrics_follow_the_paper():
    # Sec. 4.1: length-normalised accuracy for OBQA, PIQA, ARC-E, HellaSwag; accuracy otherwise.
    assert {t for t in ZERO_SHOT_TASKS if PAPER_METRICS[t] == "acc_norm"} == {"openbookqa", "piqa", "arc_easy", "hellaswag"}
    assert all(PAPER_METRICS[t] == "acc" for t in ZERO_SHOT_TASKS if t not in {"openbookqa", "piqa", "arc_easy", "hellaswag"})
    assert PAPER_METRICS["triviaqa"] == "exact_match" and set(EXTRA_16B_TASKS) <= set(PAPER_METRICS)


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    docs = list(generate_documents(40, seed=3))
    (raw / "val.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in docs))
    return tmp_path / "data"


def test_offline_tasks_are_deterministic_and_well_formed(data_dir: Path, tmp_path: Path):
    a = build_offline_tasks(data_dir, tmp_path / "a", seed=7, n_examples=50)
    b = build_offline_tasks(data_dir, tmp_path / "b", seed=7, n_examples=50)
    assert sorted(p.name for p in a.iterdir()) == sorted([f"{t}.{ext}" for t in OFFLINE_TASKS for ext in ("jsonl", "yaml")]
                                                         + ["fit.json"])
    for name in OFFLINE_TASKS:
        assert (a / f"{name}.jsonl").read_bytes() == (b / f"{name}.jsonl").read_bytes()
        # lm-eval resolves data_files against the cwd: the YAML must hold an absolute path.
        assert f'"{a / name}.jsonl"' in (a / f"{name}.yaml").read_text()
    mc = [json.loads(line) for line in (a / "offline_mc.jsonl").read_text().splitlines()]
    assert len(mc) == 50
    for row in mc:
        gold = row["choices"][row["label"]]
        others = [c for i, c in enumerate(row["choices"]) if i != row["label"]]
        assert len(set(row["choices"])) == 4  # distinct choices
        assert all(sorted(o.split()) == sorted(gold.split()) for o in others)  # same words, other order
    assert {r["label"] for r in mc} == {0, 1, 2, 3}  # gold position is not a giveaway
    cloze = [json.loads(line) for line in (a / "offline_cloze.jsonl").read_text().splitlines()]
    assert len(cloze) == 50 and all(r["target"].isalpha() or "-" in r["target"] or "'" in r["target"] for r in cloze)
    c = build_offline_tasks(data_dir, tmp_path / "c", seed=8, n_examples=50)
    for name in OFFLINE_TASKS:
        assert (c / f"{name}.jsonl").read_bytes() != (a / f"{name}.jsonl").read_bytes()


def test_offline_next_distractors_are_other_stories_same_sentence(data_dir: Path, tmp_path: Path):
    """Gold = sentence i of the context's own story; distractors = sentence i of three other stories."""
    docs = [split_sentences(json.loads(line)["text"]) for line in (data_dir / "raw" / "val.jsonl").read_text().splitlines()]
    out = build_offline_tasks(data_dir, tmp_path / "t", seed=7, n_examples=50)
    rows = [json.loads(line) for line in (out / "offline_next.jsonl").read_text().splitlines()]
    assert len(rows) == 50
    for row in rows:
        assert len(row["choices"]) == 4 and len(set(row["choices"])) == 4
        gold = row["choices"][row["label"]]
        # the story and position the context was cut from: its tail words end right before `gold`
        sites = [(d, i) for d, sents in enumerate(docs) for i in range(1, len(sents))
                 if sents[i] == gold and " ".join(" ".join(sents[:i]).split()[-MAX_CONTEXT_WORDS:]) == row["context"]]
        assert sites, row["context"][-80:]
        d, i = sites[0]
        for other in (c for k, c in enumerate(row["choices"]) if k != row["label"]):
            assert any(o != d and len(docs[o]) > i and docs[o][i] == other for o in range(len(docs))), other
    assert {r["label"] for r in rows} == {0, 1, 2, 3}
    assert len({(r["context"], r["label"]) for r in rows}) == 50  # 50 different sites, no repeats


def test_offline_tasks_bad_input(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="val.jsonl"):
        build_offline_tasks(tmp_path / "nodata", tmp_path / "out")
    raw = tmp_path / "d" / "raw"
    raw.mkdir(parents=True)
    (raw / "val.jsonl").write_text(json.dumps({"text": "one short line"}) + "\n")
    with pytest.raises(ValueError, match="no offline_mc examples"):
        build_offline_tasks(tmp_path / "d", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_parse_lm_eval_results_keeps_bare_metric_names():
    results = {
        "triviaqa": {"alias": "triviaqa", "exact_match,remove_whitespace": 0.25,
                     "exact_match_stderr,remove_whitespace": 0.01},
        "piqa": {"alias": "piqa", "acc,none": 0.6, "acc_stderr,none": 0.02, "acc_norm,none": 0.62,
                 "acc_norm_stderr,none": "N/A"},
        "mmlu_anatomy": {"acc,none": 0.3},
    }
    rows = _parse_results(results, ["triviaqa", "piqa"])
    got = {(r["task"], r["metric"]): (r["value"], r["stderr"]) for r in rows}
    assert got[("triviaqa", "exact_match")] == (0.25, 0.01)
    assert got[("piqa", "acc")] == (0.6, 0.02)
    assert got[("piqa", "acc_norm")][0] == 0.62 and math.isnan(got[("piqa", "acc_norm")][1])
    assert len(rows) == 3  # subtasks not requested are left out


def _records(run: str, accs: dict[int, tuple[float, float]]) -> pd.DataFrame:
    rows = []
    for step, (hs, bq) in accs.items():
        base = {"run": run, "variant": "indep", "scale": "tiny", "dataset": "builtin", "seed": 0, "step": step}
        rows += [{**base, "task": "hellaswag", "metric": "acc_norm", "value": hs, "stderr": 0.01},
                 {**base, "task": "hellaswag", "metric": "acc", "value": 0.99, "stderr": 0.01},  # not the paper metric
                 {**base, "task": "boolq", "metric": "acc", "value": bq, "stderr": 0.01},
                 {**base, "task": "val_ppl", "metric": "ppl", "value": 12.0, "stderr": math.nan}]
    return pd.DataFrame(rows, columns=list(RECORD_COLUMNS))


def test_select_checkpoint_best_average_of_final_five():
    # Step 100 has the best average but is not among the final 5 exports.
    accs = {100: (0.9, 0.9), 200: (0.40, 0.50), 300: (0.44, 0.50), 400: (0.41, 0.52), 500: (0.40, 0.40), 600: (0.42, 0.48)}
    sel = select_checkpoint(_records("r", accs), run_dir="/x/runs/r")
    avgs = [(h + b) / 2 for s, (h, b) in accs.items() if s != 100]
    assert sel["step"] == 300 and sel["avg"] == pytest.approx(0.47)
    assert [c["step"] for c in sel["candidates"]] == [200, 300, 400, 500, 600]
    assert sel["std_final5"] == pytest.approx(pd.Series(avgs).std(ddof=1))
    assert sel["checkpoint"] == "/x/runs/r/hf/step_300"


def test_collect_records_concatenates_runs(tmp_path: Path):
    for run in ("a", "b"):
        write_csv(_records(run, {10: (0.3, 0.4)}), tmp_path / run / "eval" / "records.csv")
    out = collect_records([tmp_path / "a", tmp_path / "b"], tmp_path / "results" / "records.csv")
    table = pd.read_csv(out)
    assert list(table.columns) == list(RECORD_COLUMNS) and sorted(set(table["run"])) == ["a", "b"]
    assert len(table) == 8
    with pytest.raises(FileNotFoundError, match="records.csv"):
        collect_records([tmp_path / "missing"], tmp_path / "x.csv")


@pytest.mark.parametrize("bad, match", [
    ({"batch_size": 0}, "eval.batch_size"),
    ({"device": "tpu"}, "eval.device"),
    ({"limit": -1}, "eval.limit"),
    ({"tasks": "piqa"}, "eval.tasks"),
    ({"num_fewshot": {"triviaqa": 5}}, "eval.num_fewshot"),
    ({"typo_key": 1}, "unknown key"),
])
def test_eval_settings_reject_bad_values(bad, match):
    with pytest.raises(ValueError, match=match):
        eval_settings({"eval": {"tasks": ["offline_mc"], **bad}})


def test_curve_tasks_are_evaluated_but_not_averaged():
    ev = eval_settings({"eval": {"tasks": ["piqa", "hellaswag"], "curve_tasks": ["hellaswag", "arc_easy"]}})
    assert ev["all_tasks"] == ["piqa", "hellaswag", "arc_easy"] and ev["tasks"] == ["piqa", "hellaswag"]


def test_cli_builds_offline_tasks(data_dir: Path, tmp_path: Path, capsys):
    from pathmoe.cli import main

    assert main(["eval", "tasks", "--data-dir", str(data_dir), "--out", str(tmp_path / "t"), "--n-examples", "5"]) == 0
    assert len((tmp_path / "t" / "offline_mc.jsonl").read_text().splitlines()) == 5
    assert main(["eval", "collect", "--runs", str(tmp_path / "nope"), "--out", str(tmp_path / "r.csv")]) == 2
    assert "records.csv" in capsys.readouterr().err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_run_on_cpu_machine_fails_before_writing(tmp_path: Path):
    from pathmoe.eval import evaluate_run

    cfg = {"run": "r", "variant": "v", "scale": "tiny", "dataset": "d", "seed": 0, "run_dir": str(tmp_path / "run"),
           "data_dir": str(tmp_path / "data"), "train": {"seq_len": 8}, "eval": {"tasks": ["piqa"], "device": "cuda"}}
    with pytest.raises(ValueError, match="no CUDA device"):
        evaluate_run(cfg)
    assert not (tmp_path / "run").exists()


def test_task_index_is_built_once_per_job(monkeypatch):
    """check_tasks and run_tasks ask for lm-eval's index with different spellings; indexing the
    ~15k task YAMLs takes seconds, so both must get the same cached TaskManager."""
    import lm_eval.tasks

    from pathmoe.eval import harness

    built = []

    class FakeTaskManager:
        def __init__(self, include_path=None, include_defaults=True):
            built.append((include_path, include_defaults))
            self.all_tasks = ["piqa"]

    monkeypatch.setattr(lm_eval.tasks, "TaskManager", FakeTaskManager)
    harness._build_task_manager.cache_clear()
    try:
        harness.check_tasks(["piqa"])
        assert harness.task_manager(None, include_defaults=True) is harness.task_manager(None)
        assert harness.task_manager(include_path=None, include_defaults=True) is harness.task_manager(None, True)
        assert built == [(None, True)]
    finally:
        harness._build_task_manager.cache_clear()  # never leave the fake in the cache
