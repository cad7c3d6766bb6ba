"""Reports: tables from known records (values, bold, order), analysis tables, the paper reference's
integrity, paper comparison, figures and the document."""

from __future__ import annotations

import argparse
import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pathmoe.analysis.paths import coverage_curve
from pathmoe.io import atomic_write_json
from pathmoe.report import (TABLES_WITH_REFERENCE, ReportSpec, compare_with_paper, load_reference,
                            parse_report_spec, render_figure, render_table, write_document)
from pathmoe.report import commands, hyperparams
from pathmoe.report.document import markdown_table
from pathmoe.report.headlines import markdown_headlines, render_headlines

TASKS8 = ["arc_easy", "boolq", "hellaswag", "lambada_openai", "openbookqa", "piqa", "social_iqa", "winogrande"]
TASK_SPEC = [{"task": t, "metric": "acc_norm" if t in ("arc_easy", "hellaswag", "openbookqa", "piqa") else "acc",
              "label": t[:5]} for t in TASKS8[:3]]
STEPS = [100, 200, 300]
SELECTED = 200
# Accuracy (fraction) per run per task at the selected step; other steps get a worse value.
ACC = {"indep_s0": [0.40, 0.50, 0.30], "indep_s1": [0.44, 0.52, 0.34], "pathb4": [0.46, 0.48, 0.36],
       "xmoe": [0.42, 0.56, 0.20]}
EXTRA = {"indep_s0": (13.0, 55.0, 66.0), "indep_s1": (12.0, 55.0, 66.0), "pathb4": (12.2, 56.0, 66.5),
         "xmoe": (14.0, 54.0, 60.0)}


def report_cfg() -> dict:
    return {
        "tasks": TASK_SPEC,
        "tasks_16b": [{"task": "winogrande", "metric": "acc", "label": "WinoGrande", "category": "Commonsense"},
                      {"task": "piqa", "metric": "acc_norm", "label": "PIQA", "category": "Commonsense"},
                      {"task": "boolq", "metric": "acc", "label": "BoolQ", "category": "Language"}],
        "run_groups": {"indep": ["indep_s0", "indep_s1"]},
        "tables": {
            "table1": {"groups": [{"label": "Independent Routing", "rows": [{"label": "Indep-MoE", "run": "indep"},
                                                                          {"label": "X-MoE", "run": "xmoe"}]},
                                  {"label": "Path-Constrained Routing", "rows": [{"label": "PathB4-MoE", "run": "pathb4"}]}]},
            "table2": {"rows": [{"label": "Indep-MoE", "run": "indep"}, {"label": "PathMoE", "run": "pathb4"}]},
            "table4": {"rows": [{"label": "PathB4-MoE", "run": "pathb4"}, {"label": "Indep-MoE", "run": "xmoe"}]},
            "table5": {"rows": [{"label": "tiny", "run": "pathb4"}]},
            "table6": {"rows": [{"label": "Indep-MoE LBL=0.01", "run": "xmoe", "cells": ["Indep-MoE", "0.01"]},
                                {"label": "PathB4-MoE LBL=0", "run": "pathb4", "cells": ["PathB4-MoE", "0"]}]},
            "table9": {},
        },
        "figures": {
            "fig3": {"tasks": ["hellaswag", "arc_easy"], "rows": [{"label": "Indep", "run": "indep"}, {"label": "B4", "run": "pathb4"}]},
            "fig4": {"rows": [{"label": "PathB4", "run": "pathb4"}, {"label": "Indep", "run": "xmoe"}]},
            "fig5": {"top_paths": 3, "rows": [{"label": "PathB4", "run": "pathb4"}, {"label": "Indep", "run": "xmoe"}]},
            "fig6a": {"rows": [{"label": "k=1", "run": "xmoe"}, {"label": "k=2", "run": "indep"}, {"label": "k=4", "run": "pathb4"}]},
            "fig6b": {"rows": [{"label": "B1", "run": "xmoe"}, {"label": "B4", "run": "pathb4"}]},
            "fig7": {"caption": "Consistency & runs", "rows": [{"label": "PathB4", "run": "pathb4"}, {"label": "Indep", "run": "xmoe"}]},
            "fig8": {"rows": [{"label": "PathB4", "run": "pathb4"}, {"label": "Indep", "run": "indep"}]},
        },
    }


RUNS = {"indep_s0", "indep_s1", "pathb4", "xmoe"}


def make_records() -> pd.DataFrame:
    rows = []
    for run, accs in ACC.items():
        for step in STEPS:
            for spec_t, acc in zip(TASK_SPEC, accs):
                value = acc if step == SELECTED else acc - 0.05
                rows.append((run, run, "tiny", "builtin", 0, step, spec_t["task"], spec_t["metric"], value, 0.01))
            rows.append((run, run, "tiny", "builtin", 0, step, "winogrande", "acc", 0.5 + accs[0] / 10, 0.01))
            rows.append((run, run, "tiny", "builtin", 0, step, "piqa", "acc_norm", 0.6, 0.01))
            ppl, thr, mem = EXTRA[run]
            rows.append((run, run, "tiny", "builtin", 0, step, "val_ppl", "ppl", ppl + (step != SELECTED), 0.0))
        rows.append((run, run, "tiny", "builtin", 0, STEPS[-1], "throughput_ktok_s", "value", thr, 0.0))
        rows.append((run, run, "tiny", "builtin", 0, STEPS[-1], "peak_mem_gib", "value", mem, 0.0))
    return pd.DataFrame(rows, columns=["run", "variant", "scale", "dataset", "seed", "step", "task", "metric", "value", "stderr"])


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    runs = tmp_path / "runs"
    for i, run in enumerate(sorted(RUNS)):
        d = runs / run
        atomic_write_json(d / "eval" / "selected.json", {"step": SELECTED, "avg": 0.4, "std_final5": 0.01, "candidates": STEPS})
        H = 3.0 + i
        a = d / "analysis"
        atomic_write_json(a / "paths.json", {"num_tokens": 1000 + 10 * i, "num_layers": 4, "routing_entropy_bits": H, "unique_paths": 100 + i,
                                             "effective_path_space": 2 ** H, "consecutive_layer_correlation": 0.5 + i / 10,
                                             "coverage": {"k": [1, 10, 100], "fraction": [0.1, 0.5, 1.0]}})
        atomic_write_json(a / "consistency.json", {"windows": list(range(2, 13)), "path_consistency": [0.8 - j / 50 for j in range(11)],
                                                   "run_lengths": {"length": [1, 2, 3, 4], "fraction": [0.5, 0.3, 0.15, 0.05]}})
        atomic_write_json(a / "entropy.json", {"layers": [0, 1, 2, 3], "mean_entropy_bits": [2.0, 1.9, 1.8, 1.7]})
        atomic_write_json(a / "robustness.json", {"p": [0, 0.5, 1.0], "ppl": [10, 20, 40], "degradation_pct": [0, 100, 300]})
        atomic_write_json(a / "specialization.json", {"mean_concentration": 0.6, "paths": [
            {"path": [j, j, 1, 2], "count": 50 - j, "categories": {"numbers": 0.7, "pronouns": 0.3 - j / 20, "other": j / 20},
             "concentration": 0.7} for j in range(4)]})
        atomic_write_json(d / "run_config.json", {
            "run": run, "variant": run, "scale": "tiny", "dataset": "builtin", "seed": 0, "run_dir": str(d), "data_dir": str(tmp_path / "data"),
            "model": {"vocab_size": 4096, "d_model": 64, "n_layers": 4, "n_heads": 4, "n_kv_heads": 2, "n_experts": 8, "top_k": 2, "expert_hidden": 32},
            "train": {"steps": 300, "global_batch_size": 16, "seq_len": 128, "lr": 3e-3, "min_lr_ratio": 0.1, "warmup_steps": 30,
                      "weight_decay": 0.1, "betas": [0.9, 0.95], "precision": "fp32"}})
    monkeypatch.setattr(hyperparams, "parameter_counts", lambda m: {"total": 1_234_567, "active": 456_789})
    cats = types.ModuleType("pathmoe.analysis.categories")
    cats.CATEGORY_TABLE = [{"name": "person_names", "type": "Lexical", "examples": ["Andrea", "John"], "rule": "name list"},
                           {"name": "adverbs_other", "type": "Pattern", "examples": ["slowly"], "rule": "Words ending in -ly"}]
    cats.OTHER = "other"
    cats.CATEGORIES = [c["name"] for c in cats.CATEGORY_TABLE] + ["other"]
    monkeypatch.setitem(sys.modules, "pathmoe.analysis.categories", cats)
    spec = parse_report_spec(report_cfg(), RUNS)
    return spec, make_records(), runs, tmp_path / "reports"


# ----------------------------------------------------------------------------- spec
def test_spec_round_trip_and_errors():
    spec = parse_report_spec(report_cfg(), RUNS)
    again = ReportSpec.from_json(spec.to_json())
    assert again.rows("table1") == spec.rows("table1") and again.seed_runs("indep") == ["indep_s0", "indep_s1"]
    assert [g.label for g in spec.groups("table1")] == ["Independent Routing", "Path-Constrained Routing"]
    bad = report_cfg()
    bad["tables"]["table1"]["groups"][1]["rows"][0]["run"] = "nosuch"
    with pytest.raises(ValueError, match=r"report\.tables\.table1\.groups\[1\]\.rows\[0\]\.run: unknown run 'nosuch'"):
        parse_report_spec(bad, RUNS)
    bad = report_cfg()
    bad["tables"]["table1"]["colour"] = "red"
    with pytest.raises(ValueError, match=r"report\.tables\.table1: .*'colour'"):
        parse_report_spec(bad, RUNS)
    bad = report_cfg()
    bad["tables"]["table6"]["rows"][0]["cells"] = ["Indep-MoE"]
    with pytest.raises(ValueError, match=r"table6\.rows\[0\]\.cells: expected 2"):
        parse_report_spec(bad, RUNS)
    cfg = report_cfg()
    del cfg["run_groups"]
    spec = parse_report_spec(cfg, RUNS, run_groups={"indep": ["indep_s0", "indep_s1"]})
    assert spec.seed_runs("indep") == ["indep_s0", "indep_s1"] and spec.seed_runs("pathb4") == ["pathb4"]
    bad = report_cfg()
    bad["run_groups"]["indep"] = ["indep_s9"]
    with pytest.raises(ValueError, match=r"run_groups\.indep: unknown run 'indep_s9'"):
        parse_report_spec(bad, RUNS)


# ----------------------------------------------------------------------------- table 1
def test_table1_values_bold_order_and_ci(env):
    spec, records, runs, out = env
    paths = render_table("table1", spec, records, out / "tables", runs, load_reference())
    assert [p.name for p in paths] == ["table1.tex", "table1.json", "table1_vs_paper.tex"]
    data = json.loads(paths[1].read_text())
    assert data["row_labels"] == ["Indep-MoE", "X-MoE", "PathB4-MoE"]
    assert data["columns"] == ["arc_easy", "boolq", "hellaswag", "avg", "val_ppl", "throughput_ktok_s", "peak_mem_gib"]
    # Selected step (200) values, percent, mean over the two indep seeds.
    indep = data["rows"]["Indep-MoE"]
    assert indep["arc_easy"] == pytest.approx(42.0) and indep["boolq"] == pytest.approx(51.0)
    assert indep["avg"] == pytest.approx((42 + 51 + 32) / 3)
    assert data["rows"]["PathB4-MoE"]["avg"] == pytest.approx((46 + 48 + 36) / 3)
    assert indep["val_ppl"] == pytest.approx(12.5) and indep["throughput_ktok_s"] == pytest.approx(55.0)
    # 95% CI of two seeds: t_{0.975,1} * sd / sqrt(2), sd of (40, 44) = 2*sqrt(2).
    assert data["ci95"]["Indep-MoE"]["arc_easy"] == pytest.approx(stats.t.ppf(0.975, 1) * 2 * math.sqrt(2) / math.sqrt(2))
    assert data["n_seeds"] == {"Indep-MoE": 2, "X-MoE": 1, "PathB4-MoE": 1}
    assert data["paper"]["Indep-MoE"]["arc_easy"] == 44.57
    assert data["delta"]["Indep-MoE"]["arc_easy"] == pytest.approx(42.0 - 44.57)

    tex = paths[0].read_text()
    body = {line.split(" & ")[0]: line.split(" & ") for line in tex.splitlines() if " & " in line}
    # Best per column: arc_easy PathB4 (46), boolq X-MoE (56), hellaswag PathB4 (36), avg PathB4,
    # PPL lowest = PathB4 (12.2), throughput highest = PathB4 (56), memory lowest = X-MoE (60).
    bold = {col: [lab for lab, cells in body.items() if r"\textbf" in cells[i + 1]] for i, col in enumerate(data["columns"])}
    assert bold == {"arc_easy": ["PathB4-MoE"], "boolq": ["X-MoE"], "hellaswag": ["PathB4-MoE"], "avg": ["PathB4-MoE"],
                    "val_ppl": ["PathB4-MoE"], "throughput_ktok_s": ["PathB4-MoE"], "peak_mem_gib": ["X-MoE"]}
    order = [tex.index(s) for s in ("Independent Routing", "Indep-MoE &", "X-MoE &", "Path-Constrained Routing", "PathB4-MoE &")]
    assert order == sorted(order)
    assert r"\toprule" in tex and r"(k tok/s/GPU)" in tex and r"$_{\pm" in tex


def test_missing_cells_and_missing_run(env):
    spec, records, runs, out = env
    partial = records[~((records["run"] == "xmoe") & (records["task"] == "boolq"))]
    data = json.loads(render_table("table1", spec, partial, out, runs, {})[1].read_text())
    assert data["rows"]["X-MoE"]["boolq"] is None and data["rows"]["X-MoE"]["avg"] is None
    assert "X-MoE & " in (out / "table1.tex").read_text() and "--" in (out / "table1.tex").read_text()
    with pytest.raises(ValueError, match=r"no rows for run 'pathb4' \(table1 row 'PathB4-MoE'\)"):
        render_table("table1", spec, records[records["run"] != "pathb4"], out, runs, {})


def test_selection_falls_back_to_best_of_final5(env):
    spec, records, runs, out = env
    (runs / "pathb4" / "eval" / "selected.json").unlink()
    data = json.loads(render_table("table1", spec, records, out, runs, {})[1].read_text())
    assert data["rows"]["PathB4-MoE"]["arc_easy"] == pytest.approx(46.0)  # step 200 is the best average


def test_selection_fallback_is_the_eval_stages_rule(env):
    """Without selected.json the report picks the step `select_checkpoint` picks: every task's paper
    metric counts, not only the report's columns."""
    from pathmoe.eval.records import select_checkpoint

    spec, records, runs, out = env
    (runs / "pathb4" / "eval" / "selected.json").unlink()
    records = records.copy()
    pathb4 = records["run"] == "pathb4"
    # Step 300: the report's three columns are best there, but WinoGrande (not a column) collapses.
    records.loc[pathb4 & (records["step"] == 300) & records["task"].isin([t["task"] for t in TASK_SPEC]), "value"] += 0.10
    records.loc[pathb4 & (records["step"] == 300) & (records["task"] == "winogrande"), "value"] = 0.0
    assert select_checkpoint(records[pathb4])["step"] == 200
    data = json.loads(render_table("table1", spec, records, out, runs, {})[1].read_text())
    assert data["rows"]["PathB4-MoE"]["arc_easy"] == pytest.approx(46.0)  # step 200's value, not step 300's 51


# ----------------------------------------------------------------------------- other tables
def test_table2_layout_and_bold(env):
    spec, records, runs, out = env
    tex = render_table("table2", spec, records, out, runs, load_reference())[0].read_text()
    lines = [line for line in tex.splitlines() if " & " in line]
    assert lines[0].startswith("Category & Task & Indep-MoE & PathMoE")
    assert lines[1].startswith("Commonsense & WinoGrande") and lines[2].startswith(" & PIQA")
    assert lines[3].startswith("Language & BoolQ") and lines[-1].startswith("Average &  & ")
    # BoolQ: indep (51.0) beats pathb4 (48.0) -> bold in the Indep column only.
    assert lines[3].split(" & ")[2].startswith(r"\textbf{51.00}") and r"\textbf" not in lines[3].split(" & ")[3]


def test_table4_from_paths_json(env):
    spec, records, runs, out = env
    paths = render_table("table4", spec, records, out, runs, load_reference())
    data = json.loads(paths[1].read_text())
    # sorted run names: indep_s0, indep_s1, pathb4 (i=2), xmoe (i=3)
    assert data["rows"]["PathB4-MoE"] == {"routing_entropy_bits": 5.0, "consecutive_layer_correlation": pytest.approx(70.0),
                                          "unique_paths": 102.0, "effective_path_space": 32.0, "num_tokens": 1020.0}
    assert data["delta"]["Indep-MoE"]["routing_entropy_bits"] == pytest.approx(6.0 - 22.20)
    tex = paths[0].read_text()
    assert "5.00 bits & 6.00 bits" in tex and r"70.0\% & 80.0\%" in tex
    assert "Held-out tokens analysed & 1,020 & 1,030" in tex  # each analysis' own token count


def test_table5_and_table9(env):
    spec, records, runs, out = env
    paths = render_table("table5", spec, records, out, runs, {})
    assert len(paths) == 2
    rows = json.loads(paths[1].read_text())["rows"]["tiny"]
    assert rows["Total parameters"] == "1.23M" and rows["Active parameters"] == "457K" and rows["Top-k routing"] == "2"
    assert rows["Training steps"] == "300" and rows["Precision"] == "FP32"
    assert hyperparams.human_count(0.9e9) == "0.9B" and hyperparams.human_count(16.2e9) == "16.2B"
    tex = render_table("table9", spec, records, out, runs, {})[0].read_text()
    assert "person\\_names & Lexical & Andrea, John" in tex and "adverbs\\_other & Pattern & Words ending in -ly" in tex


# The paper's Table 9 examples of every Lexical row (Appendix C.4), transcribed.
PAPER_TABLE9_EXAMPLES = {
    "person_names": "Andrea, Richard, Oprah, Mary, John, Elizabeth",
    "titles_roles": "secretary, minister, commander, winner, professor, CEO",
    "speech_verbs": "said, explained, told, asked, claimed, announced",
    "adverbs_discourse": "especially, actually, particularly, however, therefore",
    "adverbs_manner": "quickly, carefully, successfully, directly, properly",
    "adverbs_time": "now, today, recently, always, sometimes, currently",
    "nationalities": "American, British, Chinese, European, Japanese",
    "temporal_words": "Monday, January, morning, year, summer, afternoon",
    "prepositions": "in, on, at, to, for, with, by, from, about",
    "conjunctions": "and, or, but, because, although, while, if",
    "determiners": "the, a, an, this, that, some, every, each",
    "pronouns": "he, she, they, it, who, someone, anybody",
    "quantifiers": "all, many, most, million, percent, several",
    "common_verbs": "is, have, go, make, take, know, said, get",
    "adjectives": "good, new, important, political, economic, public",
}


def test_table9_prints_every_example_the_paper_lists(tmp_path):
    spec = parse_report_spec({"tables": {"table9": {}}}, set())
    paths = render_table("table9", spec, pd.DataFrame(), tmp_path, tmp_path, {})
    tex = paths[0].read_text()
    for name, examples in PAPER_TABLE9_EXAMPLES.items():
        assert f"{name.replace('_', chr(92) + '_')} & Lexical & {examples} " in tex, name


def test_table5_prints_the_papers_dataset_and_tokenizer_names(tmp_path, monkeypatch):
    from pathmoe.config import load_experiment

    exp = load_experiment(Path(__file__).resolve().parents[1] / "configs" / "paper-0.9b.yaml")
    assert exp.datasets["fineweb"].get("label") is None  # a printed name, not part of the data's config
    spec = ReportSpec.from_json(exp.report.to_json())
    runs = tmp_path / "runs"
    for run in ("indep_s0", "indep_16b_s0"):
        atomic_write_json(runs / run / "run_config.json", exp.run_config(run))
    monkeypatch.setattr(hyperparams, "parameter_counts", lambda m: {"total": 1, "active": 1})
    rows = json.loads(render_table("table5", spec, pd.DataFrame(), tmp_path, runs, {})[1].read_text())["rows"]
    assert (rows["0.9B Model"]["Dataset"], rows["16B Model"]["Dataset"]) == ("Fineweb-100B", "DCLM-Pro")
    assert (rows["0.9B Model"]["Tokenizer"], rows["16B Model"]["Tokenizer"]) == ("Llama 2 (32k)", "GPT-NeoX-20B")


def test_table6_head_cells(env):
    spec, records, runs, out = env
    tex = render_table("table6", spec, records, out, runs, load_reference())[0].read_text()
    assert "Routing & LBL &" in tex and "Indep-MoE & 0.01 & 42.00" in tex


# ----------------------------------------------------------------------------- reference
def test_reference_transcription_integrity():
    ref = load_reference()
    t1_rows = ["Indep-MoE", "Rand-MoE", "X-MoE", "Recurrent-MoE", "MonoB8-MoE", "LowRank-MoE", "PathMoE", "PathB8-MoE", "PathB4-MoE"]
    assert list(ref["table1"]) == t1_rows
    for row in t1_rows:
        assert list(ref["table1"][row]) == TASKS8 + ["avg", "val_ppl", "throughput_ktok_s", "peak_mem_gib"]
    # Each printed task value and the printed avg are rounded to 0.005, so |mean - avg| <= 0.01.
    for table in ("table1", "table3", "table6", "table7", "table8"):
        for row, vals in ref[table].items():
            assert abs(sum(vals[t] for t in TASKS8) / 8 - vals["avg"]) <= 0.01, (table, row)
    for row, vals in ref["table2"].items():
        tasks = [k for k in vals if k != "avg"]
        assert len(tasks) == 12 and sorted(tasks) == sorted(sum(ref["table2_categories"].values(), []))
        assert abs(sum(vals[t] for t in tasks) / 12 - vals["avg"]) <= 0.01, row
    # Shared rows transcribed twice must agree (Table 6 and 8 repeat Table 1 rows).
    assert ref["table6"]["PathB4-MoE LBL=0"] == {k: v for k, v in ref["table1"]["PathB4-MoE"].items() if k in TASKS8 + ["avg"]}
    assert ref["table8"]["X-MoE"] == {k: v for k, v in ref["table1"]["X-MoE"].items() if k in TASKS8 + ["avg"]}
    assert ref["table4"]["PathB4-MoE"]["routing_entropy_bits"] == 21.14 and ref["figures"]["fig8"]["indep_degradation_pct_p1"] == 5328


def test_compare_with_paper():
    table = {"table": "table8", "columns": ["arc_easy", "avg"], "rows": {"X-MoE": {"arc_easy": 43.0, "avg": None}, "Mine": {"arc_easy": 1.0}}}
    out = compare_with_paper(table, load_reference(), {"arc_easy": 0.5})
    by = {(c.row, c.col): c for c in out}
    assert by[("X-MoE", "arc_easy")].delta == pytest.approx(43.0 - 43.27) and by[("X-MoE", "arc_easy")].within
    assert by[("X-MoE", "avg")].ours is None and not by[("X-MoE", "avg")].within
    assert not by[("X-MoE", "boolq")].within and all(c.row == "X-MoE" for c in out) and len(out) == 9


# ----------------------------------------------------------------------------- figures, document, CLI
def test_figures_and_document(env):
    spec, records, runs, out = env
    for name in ("fig3", "fig4", "fig5", "fig6a", "fig6b", "fig7", "fig8"):
        pdf, png = render_figure(name, spec, records, runs, out / "figures")
        assert pdf.read_bytes()[:4] == b"%PDF" and pdf.stat().st_size > 1000
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    for name in spec.tables:
        render_table(name, spec, records, out / "tables", runs, load_reference())
    render_headlines(spec, records, runs, out / "tables", load_reference())
    tex = write_document(spec, out).read_text()
    for name in spec.tables:
        assert rf"\input{{tables/{name}.tex}}" in tex
        assert (rf"\input{{tables/{name}_vs_paper.tex}}" in tex) == (name in TABLES_WITH_REFERENCE)
    assert r"\includegraphics[width=\linewidth]{figures/fig8.pdf}" in tex and r"\input{tables/headlines.tex}" in tex
    md = (out / "summary.md").read_text()
    # two seeds: mean ± 95% CI half-width (t_{0.975,1} * sd / sqrt(2)), then the paper and Δ
    assert "| Indep-MoE | 42.00 ± 25.41 (44.57, -2.57) |" in md and "## table9" in md
    assert "## Headline numbers of the text" in md
    # a figure's own caption is used in both documents (escaped for LaTeX only)
    assert "- `fig7`: Consistency & runs (figures/fig7.png)" in md and r"\caption{Consistency \& runs}" in tex


def test_fig4_averages_seeds_on_their_own_coverage_grids(env):
    """Seeds with different unique_paths have different k grids: curves are compared at equal k."""
    spec, records, runs, out = env
    rng = np.random.default_rng(0)
    covs = {"indep_s0": coverage_curve(rng.integers(1, 50, 1000)), "indep_s1": coverage_curve(rng.integers(1, 50, 200))}
    assert covs["indep_s0"]["k"] != covs["indep_s1"]["k"]
    for run, cov in covs.items():
        atomic_write_json(runs / run / "analysis" / "paths.json", {"coverage": cov})
    cfg = report_cfg()
    cfg["figures"]["fig4"]["rows"] = [{"label": "Indep", "run": "indep"}]
    pdf, _ = render_figure("fig4", parse_report_spec(cfg, RUNS), records, runs, out)
    assert pdf.read_bytes()[:4] == b"%PDF"

    from pathmoe.report.figures import coverage_on_common_grid

    k, curves = coverage_on_common_grid([covs["indep_s0"], covs["indep_s1"]])
    assert k[-1] == 1000 and k == sorted(set(covs["indep_s0"]["k"]) | set(covs["indep_s1"]["k"]))
    for cov, curve in zip(covs.values(), curves):  # each seed keeps its own values at its own k
        assert [curve[k.index(x)] for x in cov["k"]] == pytest.approx(cov["fraction"])
    assert all(v == 1.0 for x, v in zip(k, curves[1]) if x >= 200)  # past its unique paths: all tokens


def test_fig5_reads_only_the_first_seed(env):
    spec, records, runs, out = env
    (runs / "indep_s1" / "analysis" / "specialization.json").unlink()  # the DAG builds only seed 0's
    cfg = report_cfg()
    cfg["figures"]["fig5"]["rows"] = [{"label": "Indep", "run": "indep"}]
    pdf, _ = render_figure("fig5", parse_report_spec(cfg, RUNS), records, runs, out)
    assert pdf.read_bytes()[:4] == b"%PDF"


def _render_all(spec, records, runs, out):
    for name in spec.figures:
        render_figure(name, spec, records, runs, out / "figures")
    for name in spec.tables:
        render_table(name, spec, records, out / "tables", runs, load_reference())
    render_headlines(spec, records, runs, out / "tables", load_reference())
    return out


def test_fig3_caption_names_the_tasks_it_plots(env):
    spec, records, runs, out = env
    from pathmoe.report.document import figure_caption

    assert figure_caption("fig3", spec) == "hella and arc_e accuracy over training, with and without the load balancing loss."
    cfg = report_cfg()
    cfg["figures"]["fig3"]["tasks"] = ["boolq", "arc_easy", "winogrande"]  # labels from report.tasks, else the name
    assert figure_caption("fig3", parse_report_spec(cfg, RUNS)).startswith("boolq, arc_e and winogrande accuracy")
    write_document(parse_report_spec(cfg, RUNS), _render_all(spec, records, runs, out))
    assert "- `fig3`: boolq, arc_e and winogrande accuracy over training" in (out / "summary.md").read_text()


def test_fig5_gives_every_category_its_own_distinct_colour(env):
    """All 24 categories in one figure: no colour is reused, and any two differ clearly (CIELAB)."""
    from matplotlib.colors import to_rgb

    from pathmoe.report import figures

    spec, records, runs, out = env
    cats_module = sys.modules["pathmoe.analysis.categories"]
    cats_module.CATEGORIES = [f"cat{i:02d}" for i in range(23)] + ["other"]
    names = cats_module.CATEGORIES
    paths = [{"path": [i, 0, 0, 0], "count": 10, "categories": {c: 1 / 6 for c in names[i::4]}} for i in range(4)]
    atomic_write_json(runs / "pathb4" / "analysis" / "specialization.json", {"mean_concentration": 0.5, "paths": paths})
    cfg = report_cfg()
    cfg["figures"]["fig5"] = {"top_paths": 4, "rows": [{"label": "PathB4", "run": "pathb4"}]}
    spec = parse_report_spec(cfg, RUNS)
    fig = figures._DRAWERS["fig5"](spec, records, runs, spec.figure_rows("fig5"), spec.figure("fig5"))
    handles, labels = fig.axes[0].get_legend_handles_labels()
    colour = {lab: to_rgb(h.patches[0].get_facecolor()) for h, lab in zip(handles, labels)}
    assert sorted(colour) == sorted(names)

    def lab(rgb):  # sRGB -> CIELAB (D65)
        c = np.array([v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4 for v in rgb])
        xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ c
        f = [t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29
             for t in xyz / np.array([0.95047, 1.0, 1.08883])]
        return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])

    points = [lab(c) for c in colour.values()]
    closest = min(np.linalg.norm(a - b) for i, a in enumerate(points) for b in points[i + 1:])
    assert closest > 20, closest


def test_fig6_has_an_average_panel_and_one_per_task(env):
    spec, records, runs, out = env
    from pathmoe.report import figures

    for name in ("fig6a", "fig6b"):
        fig = figures._DRAWERS[name](spec, records, runs, spec.figure_rows(name), spec.figure(name))
        titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
        assert titles == ["Average"] + [t.label for t in spec.tasks]
        # the per-task bars are the tables' cells: PathB4's hellaswag at the selected step
        task_ax = fig.axes[1 + [t.task for t in spec.tasks].index("hellaswag")]
        heights = [p.get_height() for p in task_ax.patches]
        row = [r.run for r in spec.figure_rows(name)].index("pathb4")
        assert heights[row] == pytest.approx(36.0)


def test_cli_table(env, tmp_path):
    spec, records, runs, out = env
    (tmp_path / "spec.json").write_text(spec.to_json())
    records.to_csv(tmp_path / "records.csv", index=False)
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", "table", "table1", "--spec", str(tmp_path / "spec.json"),
                              "--records", str(tmp_path / "records.csv"), "--runs-dir", str(runs), "--out-dir", str(out)])
    args.func(args)
    assert json.loads((out / "table1.json").read_text())["rows"]["PathB4-MoE"]["boolq"] == pytest.approx(48.0)
    with pytest.raises(SystemExit):
        parser.parse_args(["report", "table", "table10", "--spec", "x", "--runs-dir", "y"])


def test_paired_seed_test_matches_scipy():
    from scipy import stats

    from pathmoe.report.aggregate import paired_avg_test

    acc = {"a": [0.40, 0.45, 0.43], "b": [0.42, 0.49, 0.44]}  # b better on every seed, by 2/4/1 points
    rows = [(f"{b}_s{s}", b, "tiny", "builtin", s, 100, "arc_easy", "acc_norm", v, 0.0)
            for b, vals in acc.items() for s, v in enumerate(vals)]
    records = pd.DataFrame(rows, columns=["run", "variant", "scale", "dataset", "seed", "step", "task", "metric", "value", "stderr"])
    cfg = {"tasks": [{"task": "arc_easy", "metric": "acc_norm", "label": "ARC-E"}],
           "tables": {"table1": {"rows": [{"label": "A", "run": "a"}, {"label": "B", "run": "b"}]}}}
    groups = {b: [f"{b}_s{s}" for s in range(3)] for b in acc}
    spec = parse_report_spec(cfg, set(records["run"]), run_groups=groups)
    res = paired_avg_test(spec, records, None, "b", "a", spec.tasks, "test")
    expected = stats.ttest_rel([100 * v for v in acc["b"]], [100 * v for v in acc["a"]]).pvalue
    assert res["n"] == 3 and res["mean_diff"] == pytest.approx(100 * (0.02 + 0.04 + 0.01) / 3)
    assert res["p_value"] == pytest.approx(expected)
    single = parse_report_spec(cfg, set(records["run"]), run_groups={"a": ["a_s0"], "b": ["b_s0"]})
    assert paired_avg_test(single, records, None, "b", "a", single.tasks, "test") is None  # one seed: no test


def test_report_task_metric_must_be_the_papers():
    """One metric per paper task (PAPER_METRICS): a table cannot print a metric selection did not use."""
    from pathmoe.report.spec import parse_report_spec

    base = {"tables": {}}
    ok = parse_report_spec({**base, "tasks_16b": [{"task": "arc_challenge", "metric": "acc", "label": "ARC-C"}]}, None)
    assert ok.tasks_16b[0].metric == "acc"
    with pytest.raises(ValueError, match=r"report.tasks_16b: task arc_challenge has metric 'acc_norm'.*'acc'"):
        parse_report_spec({**base, "tasks_16b": [{"task": "arc_challenge", "metric": "acc_norm", "label": "ARC-C"}]},
                          None)


# ----------------------------------------------------------------------------- headlines, std, stats
def test_headline_numbers_are_compared_in_summary_and_audit(env):
    """79% vs 48% consistency, 5328% vs 237% degradation (22.5x), 11% lower entropy, 0.28 std."""
    from pathmoe.audit.paper import compare_tables

    spec, records, runs, out = env
    # fig7's baseline row is xmoe, fig8's is indep (two seeds, averaged)
    for run, cons, deg, final_h in (("pathb4", 0.79, 237.0, 1.78), ("xmoe", 0.48, 0.0, 0.0),
                                    ("indep_s0", 0.0, 5300.0, 2.0), ("indep_s1", 0.0, 5356.0, 2.0)):
        a = runs / run / "analysis"
        atomic_write_json(a / "consistency.json", {"windows": [2, 3], "path_consistency": [cons, cons],
                                                   "run_lengths": {"length": [1], "fraction": [1.0]}})
        atomic_write_json(a / "robustness.json", {"p": [0.0, 1.0], "ppl": [10, 10], "degradation_pct": [0.0, deg]})
        atomic_write_json(a / "entropy.json", {"layers": [0, 1], "mean_entropy_bits": [3.0, final_h]})
    for run in RUNS:  # checkpoint-selection std of 0.3 pp for every run (fractions in selected.json)
        atomic_write_json(runs / run / "eval" / "selected.json", {"step": SELECTED, "std_final5": 0.003})
    data = json.loads(render_headlines(spec, records, runs, out / "tables", load_reference())[1].read_text())
    fig7, fig8, text = data["rows"]["fig7"], data["rows"]["fig8"], data["rows"]["text"]
    assert fig7 == pytest.approx({"pathmoe_consistency_pct": 79.0, "indep_consistency_pct": 48.0})
    assert fig8["indep_degradation_pct_p1"] == pytest.approx(5328.0) and fig8["pathmoe_degradation_pct_p1"] == 237.0
    assert fig8["robustness_ratio_p1"] == pytest.approx(5328 / 237) and fig8["final_layer_entropy_reduction_pct"] == pytest.approx(11.0)
    assert text["checkpoint_selection_std_pct"] == pytest.approx(0.3) and text["routing_entropy_tokens"] == 1020  # Table 4 first row (pathb4) paths.json
    assert data["rows"]["fig6b"]["b4_avg"] == pytest.approx(100 * (0.46 + 0.48 + 0.36) / 3)
    assert data["rows"]["fig6a"]["top2_avg"] is None  # no row labelled "2" in this figure
    assert data["paper"]["fig8"]["robustness_ratio_p1"] == 22.5 and data["paper"]["text"]["checkpoint_selection_std_pct"] == 0.28
    md = markdown_headlines(data)
    assert "| fig7 | path consistency, path-constrained (%, mean over windows) | 79.00 | 79.00 | +0.00 |" in md
    # the audit's paper tolerance reads tables/headlines.json: pp for percentages, relative for ratios
    checks, _ = compare_tables(out, tolerance=1.0)
    by = {(c.table, c.row, c.col): c for c in checks}
    assert by[("headlines", "fig7", "indep_consistency_pct")].within and by[("headlines", "fig7", "indep_consistency_pct")].rule == "pp"
    ratio = by[("headlines", "fig8", "robustness_ratio_p1")]
    assert ratio.rule == "rel%" and ratio.within  # 22.48 vs 22.5: 0.1% off
    assert by[("headlines", "text", "checkpoint_selection_std_pct")].diff == pytest.approx(0.3 - 0.28)
    assert not by[("headlines", "fig6a", "top2_avg")].within  # not reproduced: outside tolerance


def test_table1_shows_the_checkpoint_selection_std(env):
    spec, records, runs, out = env
    for run, std in (("indep_s0", 0.002), ("indep_s1", 0.004), ("xmoe", 0.001), ("pathb4", 0.003)):
        atomic_write_json(runs / run / "eval" / "selected.json", {"step": SELECTED, "std_final5": std})
    tex_path, json_path, _ = render_table("table1", spec, records, out, runs, load_reference())
    data = json.loads(json_path.read_text())
    assert data["std_final5"] == pytest.approx({"Indep-MoE": 0.3, "X-MoE": 0.1, "PathB4-MoE": 0.3})
    assert "final 5 checkpoints: 0.23 pp on average (paper: 0.28\\%)" in tex_path.read_text()
    md = "\n".join(markdown_table("table1", data))
    assert "final 5 checkpoints (pp): Indep-MoE 0.30; X-MoE 0.10; PathB4-MoE 0.30" in md
    # a run that exported one checkpoint has no selection spread: not a 0.00
    for run in RUNS:
        atomic_write_json(runs / run / "eval" / "selected.json", {"step": SELECTED, "std_final5": 0.0, "candidates": [SELECTED]})
    tex_path, json_path, _ = render_table("table1", spec, records, out, runs, load_reference())
    assert set(json.loads(json_path.read_text())["std_final5"].values()) == {None}
    assert "final 5 checkpoints" not in tex_path.read_text()


def _seed_records(values: dict[str, list[tuple[float, float]]]) -> pd.DataFrame:
    """Records of systems x seeds: (arc_easy acc_norm, val_ppl) per seed, one checkpoint."""
    rows = []
    for base, per_seed in values.items():
        for seed, (acc, ppl) in enumerate(per_seed):
            run = f"{base}_s{seed}"
            rows.append((run, base, "tiny", "builtin", seed, 100, "arc_easy", "acc_norm", acc, 0.0))
            rows.append((run, base, "tiny", "builtin", seed, 100, "val_ppl", "ppl", ppl, 0.0))
    return pd.DataFrame(rows, columns=["run", "variant", "scale", "dataset", "seed", "step", "task", "metric", "value", "stderr"])


def test_stats_mean_ci_and_paired_difference_per_metric(tmp_path):
    from pathmoe.report.stats import markdown_stats, render_stats

    values = {"indep": [(0.40, 13.0), (0.45, 12.6), (0.43, 12.9)], "pathb4": [(0.42, 12.5), (0.49, 12.2), (0.44, 12.6)],
              "pathb4_lbl": [(0.41, 12.7), (0.46, 12.4), (0.44, 12.7)]}
    records = _seed_records(values)
    runs = tmp_path / "runs"
    entropy = {"indep": [22.0, 22.4, 22.2], "pathb4": [21.0, 21.3, 21.1], "pathb4_lbl": [21.5, 21.6, 21.4]}
    for base, hs in entropy.items():
        for seed, h in enumerate(hs):
            a = runs / f"{base}_s{seed}" / "analysis"
            atomic_write_json(a / "paths.json", {"routing_entropy_bits": h, "consecutive_layer_correlation": 0.5,
                                                 "unique_paths": 10, "num_tokens": 100})
            atomic_write_json(a / "consistency.json", {"path_consistency": [0.5, 0.7]})
            atomic_write_json(a / "entropy.json", {"mean_entropy_bits": [2.0, 1.0 + seed]})
            atomic_write_json(a / "robustness.json", {"p": [0.0, 1.0], "degradation_pct": [0.0, 100.0 * (seed + 1)]})
    cfg = {"tasks": [{"task": "arc_easy", "metric": "acc_norm", "label": "ARC-E"}],
           "stats": {"reference": "indep", "rows": [{"label": "Indep-MoE", "run": "indep"}, {"label": "PathB4-MoE", "run": "pathb4"},
                                                    {"label": "PathB4-MoE (LBL)", "run": "pathb4_lbl", "vs": "pathb4"},
                                                    {"label": "PathB4-MoE vs LBL", "run": "pathb4", "vs": "pathb4_lbl"}]}}
    groups = {b: [f"{b}_s{s}" for s in range(3)] for b in values}
    spec = parse_report_spec(cfg, set(records["run"]), run_groups=groups)
    assert spec.stats_runs() == ["indep", "pathb4", "pathb4_lbl"]
    data = json.loads(render_stats(spec, records, runs, tmp_path / "tables")[1].read_text())
    assert data["columns"][:3] == ["arc_easy", "avg", "val_ppl"] and "routing_entropy_bits" in data["columns"]
    ppl = [v[1] for v in values["pathb4"]]
    assert data["rows"]["PathB4-MoE"]["val_ppl"] == pytest.approx(np.mean(ppl))
    assert data["ci95"]["PathB4-MoE"]["val_ppl"] == pytest.approx(stats.t.ppf(0.975, 2) * np.std(ppl, ddof=1) / np.sqrt(3))
    test = data["paired"]["PathB4-MoE"]["val_ppl"]
    ref = [v[1] for v in values["indep"]]
    diffs = np.subtract(ppl, ref)
    assert test["mean_diff"] == pytest.approx(diffs.mean()) and test["n"] == 3
    assert test["ci95"] == pytest.approx(stats.t.ppf(0.975, 2) * diffs.std(ddof=1) / np.sqrt(3))
    assert test["p_value"] == pytest.approx(stats.ttest_rel(ppl, ref).pvalue)
    h = data["paired"]["PathB4-MoE"]["routing_entropy_bits"]
    assert h["mean_diff"] == pytest.approx(-1.0667, abs=1e-3) and h["p_value"] < 0.01
    assert data["paired"]["PathB4-MoE (LBL)"]["vs"] == "PathB4-MoE"  # a row's own reference
    assert data["paired"]["PathB4-MoE vs LBL"]["vs"] == "PathB4-MoE (LBL)"  # a run listed twice keeps its first name
    assert data["paired"]["PathB4-MoE (LBL)"]["arc_easy"]["mean_diff"] == pytest.approx(100 * (-0.01 - 0.03 + 0.0) / 3)
    assert "Indep-MoE" not in data["paired"]  # the reference itself: mean and CI only
    md = "\n".join(markdown_stats(data))
    assert "| Validation PPL | PathB4-MoE | 3 | 12.43 ± 0.52 | -0.40 ± 0.25 vs Indep-MoE | 0.020 |" in md
    with pytest.raises(ValueError, match=r"report.stats.rows\[0\].vs: unknown run 'nosuch'"):
        parse_report_spec({**cfg, "stats": {"rows": [{"label": "x", "run": "pathb4", "vs": "nosuch"}]}},
                          set(records["run"]), run_groups=groups)


def test_table4_and_fig7_show_the_spread_over_seeds(env):
    """Rows with several seeds: Table 4 prints the 95% CI half-width, Fig 7 a shaded CI band."""
    from pathmoe.report import figures

    spec, records, runs, out = env
    cfg = report_cfg()
    cfg["tables"]["table4"]["rows"] = [{"label": "PathB4-MoE", "run": "pathb4"}, {"label": "Indep-MoE", "run": "indep"}]
    cfg["figures"]["fig7"]["rows"] = [{"label": "Indep", "run": "indep"}]
    spec = parse_report_spec(cfg, RUNS)
    tex = render_table("table4", spec, records, out, runs, load_reference())[0].read_text()
    ci = stats.t.ppf(0.975, 1) * np.std([3.0, 4.0], ddof=1) / np.sqrt(2)  # H of indep_s0, indep_s1
    assert f"3.50 bits$_{{\\pm {ci:.2f}}}$" in tex and "5.00 bits &" in tex  # one seed: no CI
    for s in (0, 1):  # the seeds' consistency curves differ: the band has width
        atomic_write_json(runs / f"indep_s{s}" / "analysis" / "consistency.json",
                          {"windows": [2, 3, 4], "path_consistency": [0.5 + s / 10] * 3,
                           "run_lengths": {"length": [1, 2], "fraction": [0.6 + s / 10, 0.4 - s / 10]}})
    fig = figures._DRAWERS["fig7"](spec, records, runs, spec.figure_rows("fig7"), spec.figure("fig7"))
    band = fig.axes[0].collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() < 0.55 - 0.3 and band.max() > 0.55 + 0.3  # mean 0.55 ± t * sd / sqrt(2) = ± 0.64


# ----------------------------------------------------------------------------- training curves
def _metrics_log(path: Path, seed: int, steps=(1, 5, 10), layers: int = 3) -> list[dict]:
    rng = np.random.default_rng(seed)
    recs = [{"step": s, "loss": 6.0 - 0.1 * s + seed, "lm_loss": 5.0, "aux_loss": 0.01, "lr": 1e-3 * s,
             "grad_norm": 1.0 + s, "tokens_per_s": 100.0, "peak_mem_gib": 0.1,
             "expert_load_max": rng.uniform(0.3, 0.9, layers).round(4).tolist(),
             "expert_load_min": rng.uniform(0.0, 0.2, layers).round(4).tolist(),
             "dead_experts": rng.integers(0, 3, layers).tolist()} for s in steps]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return recs


def test_training_curves_plot_each_seed_and_the_per_layer_seed_mean(tmp_path):
    from pathmoe.report.curves import curves_figure, read_log, render_curves

    logs = [_metrics_log(tmp_path / f"s{i}.jsonl", i) for i in range(2)]
    fig = curves_figure("indep", [read_log(tmp_path / f"s{i}.jsonl") for i in range(2)], ["indep_s0", "indep_s1"])
    loss_ax, lr_ax, grad_ax, max_ax, min_ax, dead_ax = fig.axes[:6]
    assert [list(line.get_ydata()) for line in loss_ax.lines] == [[r["loss"] for r in log] for log in logs]
    assert [line.get_label() for line in loss_ax.lines] == ["indep_s0", "indep_s1"]
    assert list(lr_ax.lines[1].get_ydata()) == [r["lr"] for r in logs[1]]
    assert list(grad_ax.lines[0].get_xdata()) == [1, 5, 10]
    for ax, key in ((max_ax, "expert_load_max"), (min_ax, "expert_load_min"), (dead_ax, "dead_experts")):
        assert len(ax.lines) == 3  # one line per layer: the mean over both seeds
        want = np.mean([[r[key] for r in log] for log in logs], axis=0)  # [steps, layers]
        assert np.allclose(np.stack([line.get_ydata() for line in ax.lines], axis=1), want)
    pdf, png = render_curves("indep", [tmp_path / "s0.jsonl", tmp_path / "s1.jsonl"], ["a", "b"], tmp_path / "out")
    assert pdf.read_bytes()[:4] == b"%PDF" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FileNotFoundError, match="missing.jsonl not found"):
        render_curves("indep", [tmp_path / "missing.jsonl"], ["a"], tmp_path / "out")
    (tmp_path / "bad.jsonl").write_text('{"step": 1}\n{"step": \n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2 is not valid JSON"):
        render_curves("indep", [tmp_path / "bad.jsonl"], ["a"], tmp_path / "out")


def test_document_includes_the_training_curves(env, tmp_path):
    spec, records, runs, out = env
    for name in spec.figures:
        render_figure(name, spec, records, runs, out / "figures")
    for name in spec.tables:
        render_table(name, spec, records, out / "tables", runs, load_reference())
    render_headlines(spec, records, runs, out / "tables", load_reference())
    with pytest.raises(FileNotFoundError, match="figures/curves/indep.pdf missing"):
        write_document(spec, out, curves=["indep"])
    from pathmoe.report.curves import render_curves

    _metrics_log(tmp_path / "m.jsonl", 0)
    render_curves("indep", [tmp_path / "m.jsonl"], ["indep_s0"], out / "figures" / "curves")
    tex = write_document(spec, out, curves=["indep"]).read_text()
    assert r"\includegraphics[width=\linewidth]{figures/curves/indep.pdf}" in tex and r"\section{Training curves}" in tex
    assert "- `indep`: figures/curves/indep.png" in (out / "summary.md").read_text()
