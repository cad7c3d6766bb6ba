"""The throughput benchmark harness runs the real training path and its MFU is the documented formula."""

import pytest

from pathmoe.config import REPO_CONFIGS, load_experiment
from pathmoe.flops import train_flops_per_token
from pathmoe.train.throughput import bench_throughput, format_markdown


def test_bench_throughput_on_cpu(tmp_path):
    exp = load_experiment(REPO_CONFIGS / "default.yaml")
    rows = bench_throughput(exp, ["indep_s0", "pathb4_s0"], tmp_path, steps=4, micro_batch_size=2,
                            device="cpu", peak_flops=1e12)
    assert [r["run"] for r in rows] == ["indep_s0", "pathb4_s0"]
    for r in rows:
        model = {**exp.runs[r["run"]].model, "vocab_size": 2048}  # default.yaml's tokenizer, as training uses
        assert r["tokens_per_s_per_gpu"] > 0 and r["peak_mem_gib"] > 0
        assert r["flops_per_token"] == train_flops_per_token(model, 128)
        assert r["mfu"] == pytest.approx(r["flops_per_token"] * r["tokens_per_s_per_gpu"] / 1e12)
    assert all(r["compile"] is False and r["activation_checkpointing"] is False for r in rows)
    text = format_markdown(rows, "pathmoe bench ...", "CPU", 1e12)
    assert "pathb4_s0 / indep_s0 throughput ratio" in text


def test_bench_rejects_unknown_run(tmp_path):
    exp = load_experiment(REPO_CONFIGS / "default.yaml")
    with pytest.raises(ValueError, match="unknown run"):
        bench_throughput(exp, ["nope_s0"], tmp_path)


def test_bench_cli_passes_compile_and_checkpointing_overrides(tmp_path):
    from pathmoe.cli import main

    out = tmp_path / "bench.md"
    assert main(["bench", "--config", "default", "--runs", "pathb4_s0", "--steps", "3", "--micro-batch-size", "2",
                 "--device", "cpu", "--compile", "--activation-checkpointing", "--work-dir", str(tmp_path / "w"),
                 "--out", str(out)]) == 0
    row = [line for line in out.read_text().splitlines() if line.startswith("| pathb4_s0")][0]
    assert row.split(" | ")[2:4] == ["yes", "yes"]
    assert out.read_text().startswith("Command: `pathmoe bench --config default --runs pathb4_s0 --steps 3")
