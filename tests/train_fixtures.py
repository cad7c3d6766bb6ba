"""Shared fixtures of the training tests: a tiny built-in dataset and tiny run specs.

Imported by tests/test_train_*.py (`from train_fixtures import ...`); pytest puts tests/ on
sys.path. The dataset is built once per session with the data stage's own prepare function.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

DATASET = {"source": {"kind": "builtin", "num_documents": 300, "seed": 0},
           "tokenizer": {"kind": "bpe", "vocab_size": 512}, "validation_documents": 20, "num_workers": 1}

TINY_MODEL = {"vocab_size": None, "d_model": 32, "n_layers": 8, "n_heads": 2, "n_kv_heads": 1, "n_experts": 4,
              "top_k": 2, "expert_hidden": 32, "max_seq_len": 64, "router": "linear", "block_size": 1,
              "lbl_coef": 0.01}

TINY_TRAIN = {"steps": 30, "micro_batch_size": 2, "global_batch_size": 4, "seq_len": 32, "lr": 1e-2,
              "min_lr_ratio": 0.1, "warmup_steps": 3, "weight_decay": 0.1, "grad_clip": 1.0,
              "precision": "fp32", "zero_stage": 0, "device": "cpu", "log_every": 1, "ckpt_every": 10,
              "export_every": 10, "keep_exports": 2}


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """<tmp>/data/builtin: raw/, tokenizer/, shards/ of 300 built-in documents (vocab 512)."""
    from pathmoe.data import prepare_dataset

    out = tmp_path_factory.mktemp("data") / "builtin"
    prepare_dataset(copy.deepcopy(DATASET), out)
    return out


def run_config(run_dir: Path, data_dir: Path, model: dict[str, Any] | None = None,
               train: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A run spec in the ARCHITECTURE.md shape with the tiny model/train defaults overridden."""
    return {"run": run_dir.name, "variant": run_dir.name, "scale": "tiny", "dataset": "builtin", "seed": 0,
            "run_dir": str(run_dir), "data_dir": str(data_dir),
            "model": {**TINY_MODEL, **(model or {})}, "train": {**TINY_TRAIN, **(train or {})},
            "init_from": None, **extra}
