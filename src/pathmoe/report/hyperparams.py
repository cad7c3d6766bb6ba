"""Table 5 (hyperparameters) generated from the resolved run configs, never typed by hand.

Total/active parameter counts come from `pathmoe.cost.parameter_counts` (the model built on the
meta device: no memory, no weights), so the table always matches the code that trained the models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from pathmoe.cost import parameter_counts
from pathmoe.io import read_json
from pathmoe.report.spec import ReportSpec

Section = tuple[str, list[tuple[str, list[str]]]]


def human_count(n: float) -> str:
    """0.9B / 0.37B / 16.2B style, as the paper prints parameter counts."""
    if n >= 1e8:
        return f"{n / 1e9:.3g}B"
    if n >= 1e6:
        return f"{n / 1e6:.3g}M"
    return f"{n / 1e3:.3g}K"


def _steps(n: int) -> str:
    return f"{n // 1000}k" if n >= 10000 and n % 1000 == 0 else str(n)


def _resolved_model(cfg: dict[str, Any]) -> dict[str, Any]:
    model = dict(cfg["model"])
    if model.get("vocab_size") is None:
        index = Path(cfg["data_dir"]) / "shards" / "index.json"
        if not index.is_file():
            raise FileNotFoundError(f"table5: run {cfg['run']!r} has vocab_size null and {index} is missing")
        model["vocab_size"] = int(read_json(index)["vocab_size"])
    return model


def _dataset(spec: ReportSpec, cfg: dict[str, Any]) -> str:
    """The dataset's paper name (`datasets.<name>.label`), else its config key."""
    return spec.dataset_names.get(cfg["dataset"], {}).get("label", cfg["dataset"])


def _tokenizer(spec: ReportSpec, cfg: dict[str, Any], vocab: int) -> str:
    """The tokenizer as printed (`datasets.<name>.tokenizer_label`), else hub name / BPE with its vocabulary."""
    label = spec.dataset_names.get(cfg["dataset"], {}).get("tokenizer_label")
    if label:
        return label
    ds = Path(cfg.get("data_dir", "")) / "dataset_config.json"
    tok = read_json(ds).get("tokenizer", {}) if ds.is_file() else {}
    if tok.get("kind") == "hf":
        return f"{tok['name']} ({vocab // 1000}k)" if vocab >= 1000 else tok["name"]
    return f"BPE ({vocab})"


def table5_rows(spec: ReportSpec, runs_dir: Path) -> list[Section]:
    """[(section, [(hyperparameter, [value per scale column])])] from each column's run_config.json."""
    cfgs = []
    for row in spec.rows("table5"):
        run = spec.seed_runs(row.run)[0]
        p = Path(runs_dir) / run / "run_config.json"
        if not p.is_file():
            raise FileNotFoundError(f"table5 column {row.label!r}: {p} not found")
        cfgs.append(read_json(p))
    models = [_resolved_model(c) for c in cfgs]
    counts = [parameter_counts(m) for m in models]
    trains = [c["train"] for c in cfgs]

    def col(f: Callable[[int], Any]) -> list[str]:
        return [str(f(i)) for i in range(len(cfgs))]

    return [
        ("Model Architecture", [
            ("Total parameters", col(lambda i: human_count(counts[i]["total"]))),
            ("Active parameters", col(lambda i: human_count(counts[i]["active"]))),
            ("Model dimension", col(lambda i: models[i]["d_model"])),
            ("FFN hidden dimension", col(lambda i: models[i]["expert_hidden"])),
            ("Layers", col(lambda i: models[i]["n_layers"])),
            ("Attention heads", col(lambda i: models[i]["n_heads"])),
            ("KV heads", col(lambda i: models[i]["n_kv_heads"])),
            ("Experts", col(lambda i: models[i]["n_experts"])),
            ("Top-k routing", col(lambda i: models[i]["top_k"])),
        ]),
        ("Training", [
            ("Dataset", col(lambda i: _dataset(spec, cfgs[i]))),
            ("Tokenizer", col(lambda i: _tokenizer(spec, cfgs[i], int(models[i]["vocab_size"])))),
            ("Sequence length", col(lambda i: trains[i]["seq_len"])),
            ("Global batch size", col(lambda i: trains[i]["global_batch_size"])),
            ("Training steps", col(lambda i: _steps(int(trains[i]["steps"])))),
        ]),
        ("Optimization", [
            ("Optimizer", col(lambda i: "AdamW")),
            ("(beta1, beta2)", col(lambda i: ", ".join(str(b) for b in trains[i]["betas"]))),
            ("Weight decay", col(lambda i: trains[i]["weight_decay"])),
            ("Peak learning rate", col(lambda i: f"{trains[i]['lr']:g}")),
            ("LR schedule", col(lambda i: f"Cosine (to {trains[i]['min_lr_ratio']:g} x peak)")),
            ("Warmup steps", col(lambda i: trains[i]["warmup_steps"])),
            ("Precision", col(lambda i: str(trains[i]["precision"]).upper())),
        ]),
    ]
