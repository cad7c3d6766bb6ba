"""Path restriction across ranks: every rank of a continuation restricts to rank 0's path set.

Two real processes in a gloo process group; the path finder is made rank-dependent, as traces of
near-tied paths can be on GPUs, so a rank that chose its own set would be caught.
"""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from train_fixtures import TINY_MODEL, run_config, tiny_data  # noqa: F401  (tiny_data is a fixture)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, port: int, rc: dict, results: dict) -> None:
    import torch.distributed as dist

    import pathmoe.analysis.suite as suite
    from pathmoe.model import PathMoEConfig, PathMoEForCausalLM
    from pathmoe.train.restrict import init_restricted

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        def rank_dependent(kind, traces, top_n):  # what differing traces on two GPUs would give
            paths = [[(rank + i) % 4] * 8 for i in range(top_n)]
            return {"paths": paths, "counts": [10 - i for i in range(top_n)], "num_tokens": 64}

        suite.analyze_traces = rank_dependent
        model = PathMoEForCausalLM(PathMoEConfig(**{**rc["model"], "vocab_size": 512}))
        hook = init_restricted(model, rc, torch.device("cpu"), rank)
        results[rank] = np.asarray(hook.paths).tolist()
    finally:
        dist.destroy_process_group()


def test_every_rank_restricts_to_rank0_paths(tiny_data, tmp_path):  # noqa: F811
    from pathmoe.io import read_json
    from pathmoe.model import PathMoEConfig, PathMoEForCausalLM

    torch.manual_seed(0)
    src = tmp_path / "src" / "hf" / "step_5"
    PathMoEForCausalLM(PathMoEConfig(**{**TINY_MODEL, "vocab_size": 512})).save_pretrained(src)
    run = tmp_path / "restricted"
    rc = run_config(run, tiny_data, init_from={"checkpoint": str(src), "step": 5, "restrict_top_paths": 3,
                                               "path_tokens": 256})
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_rank_main, args=(_free_port(), rc, results), nprocs=2, join=True)
        got = dict(results)
    rank0 = [[i % 4] * 8 for i in range(3)]
    assert got[0] == rank0 and got[1] == rank0
    assert read_json(run / "restricted_paths.json")["paths"] == rank0  # written once, by rank 0


def test_a_replaced_init_checkpoint_changes_what_the_run_trains_from(tmp_path):
    """The identity a run resumes under (data_hash) covers the bytes of its init_from checkpoint:
    a replaced export restarts the run like changed data does; without init_from it is the data's."""
    from pathmoe.model import PathMoEConfig, PathMoEForCausalLM
    from pathmoe.train.restrict import init_identity

    cfg = PathMoEConfig(vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, n_experts=4, top_k=2,
                        expert_hidden=16, max_seq_len=32)
    torch.manual_seed(0)
    PathMoEForCausalLM(cfg).save_pretrained(tmp_path / "export")
    init = {"checkpoint": str(tmp_path / "export"), "step": 0}
    assert init_identity("data-id", None) == "data-id"
    first = init_identity("data-id", init)
    assert first != "data-id" and init_identity("data-id", init) == first
    assert init_identity("other-data", init) != first
    torch.manual_seed(1)
    PathMoEForCausalLM(cfg).save_pretrained(tmp_path / "export")  # same config, other weights
    assert init_identity("data-id", init) != first
    (tmp_path / "export" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="has no model.safetensors"):
        init_identity("data-id", init)
