"""Cross-layer routing consistency (Fig 7): permutation alignment, Jaccard consistency, run lengths.

Expert indices are arbitrary per layer (expert 3 at layer 5 has nothing to do with expert 3 at
layer 6 under independent routing), so before asking "does the token keep its experts" we relabel
every layer's experts into layer 0's index space. For each consecutive pair we solve a maximum
weight assignment (Hungarian, `scipy.optimize.linear_sum_assignment`) on the co-occurrence matrix
of their top-1 decisions and chain the matchings from layer 0 down the network.
"""

from __future__ import annotations

import numpy as np

from .paths import layer_columns

DEFAULT_WINDOWS = tuple(range(2, 13))


def _check_experts(experts: np.ndarray, num_experts: int | None) -> tuple[np.ndarray, int]:
    experts = np.asarray(experts)
    if experts.ndim != 3 or 0 in experts.shape:
        raise ValueError(f"experts must be a non-empty [tokens, layers, k] array, got shape {experts.shape}")
    found = int(experts.max()) + 1
    num_experts = found if num_experts is None else num_experts
    if found > num_experts or experts.min() < 0:
        raise ValueError(f"expert ids must lie in [0, {num_experts}), found [{int(experts.min())}, {found - 1}]")
    return experts, num_experts


def cooccurrence(a: np.ndarray, b: np.ndarray, num_experts: int) -> np.ndarray:
    """[E, E] counts of tokens with top-1 expert i at one layer and j at the next."""
    code = np.asarray(a, dtype=np.int64) * num_experts + np.asarray(b, dtype=np.int64)
    return np.bincount(code, minlength=num_experts * num_experts).reshape(num_experts, num_experts)


def align_experts(top1: np.ndarray, num_experts: int | None = None) -> np.ndarray:
    """Per-layer relabelling maps [L, E]: `maps[l][raw expert] -> aligned index` (layer 0 = identity).

    Layer l+1's expert j is matched to the layer-l expert i that maximises total co-occurrence
    (Hungarian assignment) and inherits i's aligned index, so the chain puts every layer in layer
    0's index space. Each map is a permutation of 0..E-1.
    """
    from scipy.optimize import linear_sum_assignment  # here, not at module top: scipy.optimize takes ~0.4 s to import

    top1 = np.asarray(top1)
    if top1.ndim != 2 or 0 in top1.shape:
        raise ValueError(f"top1 must be a non-empty [tokens, layers] array, got shape {top1.shape}")
    num_experts = int(top1.max()) + 1 if num_experts is None else num_experts
    cols = layer_columns(top1)  # [L, tokens] contiguous
    num_layers = cols.shape[0]
    maps = np.empty((num_layers, num_experts), dtype=np.int64)
    maps[0] = np.arange(num_experts)
    for layer in range(num_layers - 1):
        counts = cooccurrence(cols[layer], cols[layer + 1], num_experts)
        rows, match = linear_sum_assignment(counts, maximize=True)  # rows = arange(E)
        maps[layer + 1, match] = maps[layer, rows]
    return maps


def set_masks(experts: np.ndarray, maps: np.ndarray | None, num_experts: int) -> np.ndarray:
    """Aligned top-k sets as bitmasks [L, tokens, W] uint64 (W = ceil(E / 64) words).

    Set algebra on bitmasks (AND, OR, popcount) replaces per-token Python and [tokens, k, k]
    comparisons: Jaccard and run lengths become a handful of vectorised passes. Alignment is folded
    into a per-layer lookup table raw expert -> bit of its aligned index.
    """
    n, num_layers, k = experts.shape
    words = (num_experts + 63) // 64
    aligned = np.arange(num_experts) if maps is None else None
    masks = np.zeros((num_layers, n, words), dtype=np.uint64)
    for layer in range(num_layers):
        idx = aligned if maps is None else maps[layer]
        lut = np.zeros((num_experts, words), dtype=np.uint64)
        lut[np.arange(num_experts), idx // 64] = np.left_shift(np.uint64(1), (idx % 64).astype(np.uint64))
        for j in range(k):
            masks[layer] |= lut[experts[:, layer, j]]
    return masks


_BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _popcount(x: np.ndarray) -> np.ndarray:
    """Set bits per mask [..., W] uint64 -> [...] (np.bitwise_count needs numpy >= 2.0)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).sum(axis=-1, dtype=np.int64)
    return _BYTE_POPCOUNT[np.ascontiguousarray(x).view(np.uint8)].reshape(*x.shape[:-1], -1).sum(-1, dtype=np.int64)


def _mask_chunks(experts: np.ndarray, maps: np.ndarray | None, num_experts: int, chunk: int):
    """Bitmasks of `chunk` tokens at a time, so memory stays at [L, chunk, W] uint64 whatever the trace size."""
    for start in range(0, experts.shape[0], chunk):
        yield set_masks(experts[start:start + chunk], maps, num_experts)


def _jaccard_sums(masks: np.ndarray) -> np.ndarray:
    """Sum over tokens of the Jaccard index of consecutive layers' sets: [L-1]."""
    return np.array([(_popcount(a & b) / _popcount(a | b)).sum() for a, b in zip(masks[:-1], masks[1:])])


def pair_jaccard(experts: np.ndarray, num_experts: int, maps: np.ndarray | None = None,
                 chunk: int = 1 << 18) -> np.ndarray:
    """Mean over tokens of the Jaccard index of the top-k sets at layers l and l+1: [L-1] float64."""
    total = sum(_jaccard_sums(masks) for masks in _mask_chunks(experts, maps, num_experts, chunk))
    return np.asarray(total, dtype=np.float64) / experts.shape[0]


def _windowed(jac: np.ndarray, windows: tuple[int, ...]) -> tuple[list[int], list[float]]:
    num_layers = jac.size + 1
    kept, scores = [], []
    for w in windows:
        if w < 2:
            raise ValueError(f"window sizes must be >= 2, got {w}")
        if w > num_layers:
            continue
        per_window = [jac[s:s + w - 1].mean() for s in range(0, num_layers - w + 1, w)]
        kept.append(int(w))
        scores.append(float(np.mean(per_window)))
    return kept, scores


def path_consistency(experts: np.ndarray, num_experts: int, maps: np.ndarray | None = None,
                     windows: tuple[int, ...] = DEFAULT_WINDOWS) -> tuple[list[int], list[float]]:
    """Path consistency per window size w (windows longer than the network are dropped).

    `experts` [tokens, L, k] is relabelled chunk-wise with `maps` (None = already aligned).
    Layers are tiled from layer 0 into non-overlapping windows of w layers (a shorter tail is
    dropped); inside a window we average the Jaccard index of consecutive layers' aligned top-k
    sets; the score is the mean over tokens and windows. Tiling from 0 makes windows w = B line
    up with PathMoE's sharing blocks, so block-aligned and non-aligned windows can be contrasted.
    """
    return _windowed(pair_jaccard(experts, num_experts, maps), windows)


def run_lengths(experts: np.ndarray, num_experts: int, maps: np.ndarray | None = None,
                chunk: int = 1 << 18) -> tuple[list[int], list[float]]:
    """Sustained engagement: fraction of (token, aligned expert) runs lasting x layers, x = 1..L.

    A run is a maximal stretch of consecutive layers during which the aligned expert stays in the
    token's top-k set. With bitmasks m_l, the experts present at every layer s..s+x-1 are
    AND(m_s..m_{s+x-1}); those absent at s-1 and s+x start and end a run of exactly x there.
    """
    hist = sum(_run_hist(masks) for masks in _mask_chunks(experts, maps, num_experts, chunk))
    return _run_fractions(hist)


def _run_hist(masks: np.ndarray) -> np.ndarray:
    """Counts of runs by length [L+1] (index 0 unused) for bitmasks [L, tokens, W]."""
    num_layers = masks.shape[0]
    hist = np.zeros(num_layers + 1, dtype=np.int64)
    zero = np.zeros_like(masks[0])
    padded = [zero, *masks, zero]  # padded[l + 1] = m_l; empty sets outside the network
    for s in range(num_layers):
        inside = masks[s] & ~padded[s]  # present at s, absent at s-1: a run starts at s
        for x in range(1, num_layers - s + 1):
            if x > 1:
                inside &= masks[s + x - 1]
            if not inside.any():
                break
            hist[x] += _popcount(inside & ~padded[s + x + 1]).sum()
    return hist


def _run_fractions(hist: np.ndarray) -> tuple[list[int], list[float]]:
    total = hist[1:].sum()
    return list(range(1, hist.size)), (hist[1:] / max(total, 1)).tolist()


def consistency_metrics(experts: np.ndarray, num_experts: int | None = None,
                        windows: tuple[int, ...] = DEFAULT_WINDOWS) -> dict:
    """The `consistency.json` record from traces' experts [tokens, L, k]."""
    experts, num_experts = _check_experts(experts, num_experts)
    maps = align_experts(experts[:, :, 0], num_experts)
    jac, hist = 0.0, 0
    for masks in _mask_chunks(experts, maps, num_experts, 1 << 18):  # one pass feeds both metrics
        jac = jac + _jaccard_sums(masks)
        hist = hist + _run_hist(masks)
    kept, scores = _windowed(np.asarray(jac, dtype=np.float64) / experts.shape[0], windows)
    lengths, fractions = _run_fractions(hist)
    return {"windows": kept, "path_consistency": scores,
            "run_lengths": {"length": lengths, "fraction": fractions},
            "alignment": maps.tolist()}
