"""Library entry points behind `pathmoe analyze`: file in, JSON out, and the whole suite per checkpoint.

Each function takes explicit paths (a checkpoint dir, a shards dir, a traces file) so it works on
any checkpoint, native or Hugging Face, independent of the experiment config. torch and the
trace collector are imported inside the functions that run a model: the Snakefile imports this
module for `TRACE_ANALYSES` while it parses the DAG.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pathmoe.io import atomic_write_json

from .consistency import consistency_metrics
from .paths import path_metrics, top_paths
from .specialization import specialization, word_categories

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

DEFAULT_P = (0.0, 0.25, 0.5, 0.75, 1.0)


def val_tokens(shards_dir: str | os.PathLike, num_tokens: int) -> np.ndarray:
    """The first `num_tokens` tokens of the held-out val split (the fixed analysis token set)."""
    from pathmoe.data import TokenShards

    if num_tokens < 1:
        raise ValueError(f"num_tokens must be >= 1, got {num_tokens}")
    val = TokenShards(shards_dir, "val")
    if len(val) < num_tokens:
        log.warning("val split has only %d tokens < %d requested; using all", len(val), num_tokens)
    return val.window(0, min(num_tokens, len(val)))  # reads only these tokens, across shard files


def load_model(checkpoint: str | os.PathLike, device: torch.device):
    """A pathmoe checkpoint (HF export dir) in eval mode on `device`; an incomplete or corrupted export
    is a one-line error (pathmoe.model.export)."""
    from pathmoe.eval.checkpoint import check_checkpoint
    from pathmoe.model.export import load_export

    return load_export(check_checkpoint(checkpoint)).to(device).eval()


def load_hf_model(name_or_path: str, device: torch.device):
    """Any Hugging Face MoE causal LM (local dir or hub name; hub access is the caller's choice)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(name_or_path).to(device).eval()


def suite_tokenizer(checkpoint: str | os.PathLike, shards: str | os.PathLike,
                    tokenizer_dir: str | os.PathLike | None = None) -> Any:
    """`tokenizer_dir` when given, else the checkpoint's own tokenizer, else the data dir's above `shards`."""
    from pathmoe.data import load_tokenizer
    from pathmoe.eval.checkpoint import load_tokenizer_for

    if tokenizer_dir is not None:
        return load_tokenizer(tokenizer_dir)
    return load_tokenizer_for(Path(checkpoint), Path(shards).parent / "tokenizer")


def traces_of(tokens: np.ndarray, seq_len: int, checkpoint: str | os.PathLike | None = None,
              hf_model: str | None = None, batch_size: int = 8, device: str = "auto") -> dict[str, np.ndarray]:
    """Traces of a pathmoe checkpoint or (hf_model) an HF MoE model over `tokens`."""
    from pathmoe.eval.checkpoint import resolve_device

    from .traces import collect_traces

    if (checkpoint is None) == (hf_model is None):
        raise ValueError("give exactly one of checkpoint (a pathmoe export) or hf_model (an HF MoE model)")
    dev = resolve_device(device)
    if hf_model is not None:
        from .hf import collect_hf_traces

        return collect_hf_traces(load_hf_model(hf_model, dev), tokens, seq_len=seq_len, batch_size=batch_size,
                                 device=dev)
    return collect_traces(load_model(checkpoint, dev), tokens, seq_len, batch_size, dev)


def make_traces(out: str | os.PathLike, shards: str | os.PathLike, num_tokens: int, seq_len: int,
                checkpoint: str | None = None, hf_model: str | None = None, batch_size: int = 8,
                device: str = "auto") -> dict[str, np.ndarray]:
    """Collect traces over the first `num_tokens` val tokens of `shards` and save them to `out`."""
    from .traces import save_traces

    traces = traces_of(val_tokens(shards, num_tokens), seq_len, checkpoint, hf_model, batch_size, device)
    save_traces(out, traces)
    return traces


def analyze_traces(kind: str, traces: dict[str, np.ndarray], tokenizer: Any = None, num_paths: int = 20,
                   top_n: int = 500) -> dict:
    """One traces-only analysis: kind in paths | consistency | entropy | specialization | top-paths.

    Every record carries `num_tokens`: the number of traced tokens it was computed from.
    """
    top1 = traces["experts"][:, :, 0]
    if kind == "paths":
        record = path_metrics(top1)
    elif kind == "consistency":
        record = consistency_metrics(traces["experts"])
    elif kind == "entropy":
        from .traces import mean_entropy_per_layer

        record = mean_entropy_per_layer(traces)
    elif kind == "specialization":
        if tokenizer is None:
            raise ValueError("the specialization analysis needs a tokenizer: pass --tokenizer DIR")
        record = specialization(top1, word_categories(traces["tokens"], tokenizer), num_paths)
    elif kind == "top-paths":
        paths, counts = top_paths(top1, top_n)
        record = {"paths": paths.tolist(), "counts": counts.tolist()}
    else:
        raise ValueError(f"unknown analysis {kind!r}; allowed: paths, consistency, entropy, specialization, top-paths")
    return {**record, "num_tokens": int(top1.shape[0])}


# Every traces-only analysis, in the order `run_all` runs them; each writes `<kind>.json` (`-` -> `_`).
TRACE_ANALYSES = ("paths", "consistency", "entropy", "specialization", "top-paths")


def run_all(checkpoint: str | os.PathLike, shards: str | os.PathLike, out_dir: str | os.PathLike,
            num_tokens: int = 20000, seq_len: int = 128, p_values: tuple[float, ...] = DEFAULT_P,
            batch_size: int = 8, device: str = "auto", tokenizer_dir: str | None = None,
            repeats: int = 1, seed: int = 0, num_paths: int = 20, top_n: int = 500) -> dict[str, float]:
    """Every analysis of one checkpoint into `out_dir` (traces.npz + the six JSONs); returns seconds per step."""
    from pathmoe.eval.checkpoint import resolve_device

    from .robustness import check_p_values, permutation_robustness
    from .traces import collect_traces, save_traces

    check_p_values(list(p_values))  # robustness runs last: a bad p must fail before the traces
    out_dir = Path(out_dir)
    tokenizer = suite_tokenizer(checkpoint, shards, tokenizer_dir)  # fail before any work
    dev = resolve_device(device)
    tokens = val_tokens(shards, num_tokens)
    model = load_model(checkpoint, dev)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    traces = collect_traces(model, tokens, seq_len, batch_size, dev)
    save_traces(out_dir / "traces.npz", traces)
    timings["traces"] = time.perf_counter() - start
    for kind in TRACE_ANALYSES:
        start = time.perf_counter()
        record = analyze_traces(kind, traces, tokenizer=tokenizer, num_paths=num_paths, top_n=top_n)
        atomic_write_json(out_dir / f"{kind.replace('-', '_')}.json", record)
        timings[kind] = time.perf_counter() - start
    start = time.perf_counter()
    record = permutation_robustness(model, tokens, list(p_values), seq_len, batch_size, dev, seed=seed,
                                    repeats=repeats)
    atomic_write_json(out_dir / "robustness.json", record)
    timings["robustness"] = time.perf_counter() - start
    return timings
