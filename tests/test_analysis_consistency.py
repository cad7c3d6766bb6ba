"""Fig 7: permutation alignment, Jaccard path consistency and run lengths on planted routing."""

import numpy as np
import pytest

from pathmoe.analysis.consistency import align_experts, consistency_metrics, run_lengths
from pathmoe.analysis.traces import mean_entropy_per_layer


def _random_sets(rng, n, num_experts, k):
    return np.argsort(rng.random((n, num_experts)), axis=1)[:, :k]  # k distinct experts per token


def test_alignment_recovers_a_planted_permutation():
    rng = np.random.default_rng(0)
    n, num_layers, num_experts = 20_000, 6, 8
    base = rng.integers(0, num_experts, n)
    perms = [np.arange(num_experts)] + [rng.permutation(num_experts) for _ in range(num_layers - 1)]
    top1 = np.stack([p[base] for p in perms], 1)
    noise = rng.random(top1.shape) < 0.2  # 20% of decisions are random
    top1 = np.where(noise, rng.integers(0, num_experts, top1.shape), top1)
    maps = align_experts(top1, num_experts)
    for layer, perm in enumerate(perms):
        np.testing.assert_array_equal(maps[layer][perm], np.arange(num_experts))


def test_identical_sets_up_to_relabelling_are_fully_consistent():
    rng = np.random.default_rng(1)
    n, num_layers, num_experts, k = 5000, 7, 8, 2
    base = _random_sets(rng, n, num_experts, k)
    experts = np.stack([rng.permutation(num_experts)[base] for _ in range(num_layers)], 1)
    m = consistency_metrics(experts, num_experts)
    assert m["windows"] == [2, 3, 4, 5, 6, 7]  # windows longer than the network are dropped
    assert m["path_consistency"] == pytest.approx([1.0] * 6)
    # every (token, expert) run spans the whole network
    assert m["run_lengths"]["fraction"] == pytest.approx([0.0] * 6 + [1.0])


def test_independent_sets_give_the_hypergeometric_jaccard():
    # k=2 of 8 experts, independent: P(|A&B|=1) = 12/28, P(=2) = 1/28 -> E[J] = 12/28/3 + 1/28 = 5/28.
    rng = np.random.default_rng(2)
    experts = np.stack([_random_sets(rng, 40_000, 8, 2) for _ in range(5)], 1)
    m = consistency_metrics(experts, 8)
    assert m["path_consistency"] == pytest.approx([5 / 28] * 4, abs=0.01)


def test_run_lengths_closed_form():
    # one token, k=1: expert 0 at layers 0-2, expert 1 at 3, expert 0 at 4 -> runs of 3, 1, 1
    experts = np.array([[[0], [0], [0], [1], [0]]])
    lengths, fractions = run_lengths(experts, num_experts=2)
    assert lengths == [1, 2, 3, 4, 5]
    assert fractions == pytest.approx([2 / 3, 0, 1 / 3, 0, 0])


def test_window_tiling_separates_block_aligned_windows():
    # Decisions change exactly between layers 3 and 4 (blocks of 4): windows of 4 never cross it.
    rng = np.random.default_rng(3)
    a, b = _random_sets(rng, 4000, 8, 1), _random_sets(rng, 4000, 8, 1)
    b = np.where(b == a, (b + 1) % 8, b)  # guarantee a change
    experts = np.stack([a] * 4 + [b] * 4, 1)
    m = consistency_metrics(experts, 8, windows=(4, 5))
    assert m["path_consistency"][0] > 0.99  # windows [0-3], [4-7]
    assert m["path_consistency"][1] < 0.9  # window [0-4] contains the change


def test_entropy_per_layer_is_the_token_mean():
    ent = np.array([[1.0, 2.0], [3.0, 0.0]], dtype=np.float16)
    out = mean_entropy_per_layer({"router_entropy_bits": ent})
    assert out == {"layers": [0, 1], "mean_entropy_bits": [2.0, 1.0]}
    with pytest.raises(ValueError, match="router_entropy_bits"):
        mean_entropy_per_layer({})


def test_bitmask_jaccard_and_runs_match_a_python_reference_beyond_64_experts():
    from pathmoe.analysis.consistency import pair_jaccard

    rng = np.random.default_rng(4)
    experts = np.stack([_random_sets(rng, 300, 80, 3) for _ in range(4)], 1)  # 80 experts: 2 mask words
    ref_jac = [np.mean([len(set(t[l]) & set(t[l + 1])) / len(set(t[l]) | set(t[l + 1])) for t in experts])
               for l in range(3)]
    np.testing.assert_allclose(pair_jaccard(experts, 80), ref_jac)
    hist = np.zeros(5)
    for t in experts:
        for e in range(80):
            run = 0
            for layer in range(4):
                if e in t[layer]:
                    run += 1
                elif run:
                    hist[run] += 1
                    run = 0
            hist[run] += run > 0
    _, fractions = run_lengths(experts, 80)
    np.testing.assert_allclose(fractions, hist[1:] / hist[1:].sum())
