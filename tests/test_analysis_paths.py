"""Closed forms of the path statistics (Table 4, Fig 4, Table 3) and the traces file contract."""

import math

import numpy as np
import pytest

from pathmoe.analysis.paths import (consecutive_layer_correlation, coverage_curve, cramers_v, entropy_bits,
                                    path_ids, path_metrics, top_paths)
from pathmoe.analysis.traces import load_traces, save_traces


def test_independent_uniform_routing_entropy_hits_the_plugin_bound():
    # N^L = 4^3 = 64 paths, 200k tokens: the plug-in estimate is within a hair of L log2 N = 6 bits.
    rng = np.random.default_rng(0)
    top1 = rng.integers(0, 4, size=(200_000, 3))
    m = path_metrics(top1)
    assert m["routing_entropy_bits"] == pytest.approx(3 * math.log2(4), abs=0.01)
    assert m["unique_paths"] == 64
    assert m["effective_path_space"] == pytest.approx(2 ** m["routing_entropy_bits"])
    assert abs(m["consecutive_layer_correlation"]) < 0.02


def test_many_paths_entropy_is_bounded_by_log2_tokens():
    # 16^24 paths, 50k tokens: all paths distinct, H = log2(tokens) = min(L log2 N, log2 n).
    rng = np.random.default_rng(1)
    top1 = rng.integers(0, 16, size=(50_000, 24), dtype=np.int16)
    m = path_metrics(top1)
    assert m["unique_paths"] == 50_000
    assert m["routing_entropy_bits"] == pytest.approx(math.log2(50_000), abs=1e-9)


def test_identical_routing_at_every_layer_gives_log2_n_and_n_paths():
    rng = np.random.default_rng(2)
    col = rng.integers(0, 16, size=100_000)
    top1 = np.repeat(col[:, None], 24, axis=1)  # 24 layers: exercises the 63-bit re-densify
    m = path_metrics(top1)
    assert m["unique_paths"] == 16
    assert m["routing_entropy_bits"] == pytest.approx(math.log2(16), abs=0.01)
    assert m["consecutive_layer_correlation"] == pytest.approx(1.0)
    assert m["coverage"]["k"][-1] == 16 and m["coverage"]["fraction"][-1] == pytest.approx(1.0)


def test_path_ids_match_a_python_reference_exactly():
    rng = np.random.default_rng(3)
    top1 = rng.integers(0, 3, size=(5000, 40))  # 40 layers x 2 bits > 63 bits
    top1[:2500] = top1[2500:]  # plant duplicates
    index = path_ids(top1)
    rows = [tuple(r) for r in top1.tolist()]
    ref = {}
    for r in rows:
        ref[r] = ref.get(r, 0) + 1
    assert index.counts.size == len(ref)
    assert sorted(index.counts.tolist()) == sorted(ref.values())
    for i in range(0, 5000, 97):  # ids agree with row equality, counts with the reference
        assert index.counts[index.ids[i]] == ref[rows[i]]
        assert tuple(top1[index.member[index.ids[i]]]) == rows[i]


def test_entropy_and_coverage_closed_forms():
    assert entropy_bits(np.array([1, 1, 1, 1])) == pytest.approx(2.0)
    assert entropy_bits(np.array([5, 0])) == 0.0
    cov = coverage_curve(np.array([6, 3, 1]))
    assert cov["k"] == [1, 2, 3]
    assert cov["fraction"] == pytest.approx([0.6, 0.9, 1.0])


def test_cramers_v_permuted_copy_is_one_and_constant_is_zero():
    rng = np.random.default_rng(4)
    a = rng.integers(0, 8, size=10_000)
    perm = rng.permutation(8)
    assert cramers_v(a, perm[a]) == pytest.approx(1.0)
    assert cramers_v(a, np.zeros_like(a)) == 0.0
    corr, pairs = consecutive_layer_correlation(np.stack([a, perm[a], a], 1))
    assert corr == pytest.approx(1.0) and len(pairs) == 2


def test_top_paths_are_most_frequent_first():
    top1 = np.array([[0, 1]] * 5 + [[2, 2]] * 3 + [[1, 0]] * 7 + [[3, 3]])
    paths, counts = top_paths(top1, 2)
    assert paths.tolist() == [[1, 0], [0, 1]]
    assert counts.tolist() == [7, 5]
    with pytest.raises(ValueError, match="n must be"):
        top_paths(top1, 0)


def test_traces_roundtrip_and_validation(tmp_path):
    rng = np.random.default_rng(5)
    traces = {"experts": rng.integers(0, 8, (10, 3, 2)).astype(np.int16),
              "weights": rng.random((10, 3, 2)).astype(np.float32),
              "tokens": np.arange(10, dtype=np.int32),
              "router_entropy_bits": rng.random((10, 3)).astype(np.float16)}
    save_traces(tmp_path / "t.npz", traces)
    back = load_traces(tmp_path / "t.npz")
    for key, value in traces.items():
        np.testing.assert_array_equal(back[key], value)
    bad = dict(traces, weights=traces["weights"][:5])
    with pytest.raises(ValueError, match="'weights' shape"):
        save_traces(tmp_path / "bad.npz", bad)
    with pytest.raises(ValueError, match="missing key"):
        save_traces(tmp_path / "bad.npz", {"experts": traces["experts"]})
    with pytest.raises(FileNotFoundError):
        load_traces(tmp_path / "nope.npz")
    assert not (tmp_path / "bad.npz").exists()
