"""Expert-path statistics (Table 4, Fig 4, Table 3): entropy, unique paths, coverage, correlation.

A token's *path* is its top-1 expert at every layer, an L-digit number in base N. With 16 experts
and 24 layers that is 96 bits, too wide for one integer, and a Python loop over millions of tokens
is far too slow. `path_ids` therefore folds the layers into an int64 code a few layers at a time
and, whenever the next layer would overflow 63 bits, re-densifies the code to its group rank
(one argsort; ranks < number of tokens, so they need only ~23 bits). Equality of codes is preserved exactly at
every step, so unique paths and their counts are exact (no hashing, no collisions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PathIndex:
    """Every token's path id plus per-path counts; ids number the unique paths 0..U-1."""

    ids: np.ndarray  # [tokens] int64, index into counts/member
    counts: np.ndarray  # [U] int64
    member: np.ndarray  # [U] int64, index of one token that took each path (to read the path back)


def _check_top1(top1: np.ndarray) -> np.ndarray:
    top1 = np.asarray(top1)
    if top1.ndim != 2 or top1.shape[0] == 0 or top1.shape[1] == 0:
        raise ValueError(f"experts_top1 must be a non-empty [tokens, layers] array, got shape {top1.shape}")
    if not np.issubdtype(top1.dtype, np.integer):
        raise ValueError(f"experts_top1 must hold integer expert ids, got dtype {top1.dtype}")
    if top1.min() < 0:
        raise ValueError(f"experts_top1 holds a negative expert id ({int(top1.min())}); ids must be >= 0")
    return top1


def _group(code: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense group ids, counts and one member (token index) of each group of equal `code` values.

    Hand-rolled instead of `np.unique(return_index=..., return_inverse=...)`, which uses a stable
    sort and is ~5x slower on millions of int64 codes.
    """
    order = np.argsort(code)
    sorted_code = code[order]
    new_group = np.empty(code.size, dtype=bool)
    new_group[0] = True
    np.not_equal(sorted_code[1:], sorted_code[:-1], out=new_group[1:])
    starts = np.flatnonzero(new_group)
    rank = np.cumsum(new_group, dtype=np.int64)
    rank -= 1
    ids = np.empty(code.size, dtype=np.int64)
    ids[order] = rank
    del rank, sorted_code
    counts = np.diff(np.append(starts, code.size))
    return ids, counts.astype(np.int64), order[starts].astype(np.int64)


def layer_columns(top1: np.ndarray, chunk: int = 1 << 12) -> np.ndarray:
    """Contiguous per-layer decisions [L, tokens] in the narrowest unsigned dtype.

    Trace columns are strided (a token's row holds all layers and k experts), so reading a layer
    touches every cache line of the traces; one chunked transpose up front makes every later pass
    over a layer sequential and, with uint8 ids, 8x smaller than an int64 copy.
    """
    top1 = _check_top1(top1)
    hi = int(top1.max())  # one full pass over the strided traces, not two
    dtype = np.uint8 if hi < 256 else np.uint16 if hi < 65536 else np.int64
    cols = np.empty(top1.shape[::-1], dtype=dtype)
    for start in range(0, top1.shape[0], chunk):
        cols[:, start:start + chunk] = top1[start:start + chunk].T
    return cols


def path_ids(top1: np.ndarray, cols: np.ndarray | None = None) -> PathIndex:
    """Exact unique-path ids for `top1` [tokens, layers] (vectorised, no per-token Python).

    Path ids are numbered in lexicographic order of the paths (layer 0 most significant), since
    group ranks preserve the order of the codes.
    """
    cols = layer_columns(top1) if cols is None else cols
    num_layers, n = cols.shape
    bits = max(1, int(cols.max()).bit_length())
    code = np.zeros(n, dtype=np.int64)
    code_bits = 0
    for layer in range(num_layers):
        if code_bits + bits > 63:
            # Re-densify: group ids preserve equality and order and fit in few bits.
            code = _group(code)[0]
            code_bits = max(1, int(code.max()).bit_length())
        code <<= bits
        code |= cols[layer]
        code_bits += bits
    ids, counts, member = _group(code)
    return PathIndex(ids=ids, counts=counts, member=member)


def entropy_bits(counts: np.ndarray) -> float:
    """Plug-in Shannon entropy (bits) of the empirical distribution given by `counts`."""
    counts = np.asarray(counts, dtype=np.float64)
    counts = counts[counts > 0]
    if counts.size == 0:
        return 0.0
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def coverage_curve(counts: np.ndarray, points: int = 40) -> dict[str, list]:
    """Fraction of tokens covered by the k most frequent paths, k on a log grid up to all paths."""
    counts = np.sort(np.asarray(counts, dtype=np.int64))[::-1]
    total = counts.sum()
    cum = np.cumsum(counts) / total
    num = counts.size
    ks = np.unique(np.round(np.logspace(0, np.log10(num), points)).astype(np.int64)) if num > 1 else np.array([1])
    ks = np.unique(np.clip(np.append(ks, num), 1, num))
    return {"k": ks.tolist(), "fraction": cum[ks - 1].tolist()}


def cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    """Cramér's V between two categorical vectors: 1 = one determines the other, ~0 = independent.

    Computed on the contingency table of the *used* categories. When either side uses a single
    category the dependence is undefined; we return 0.0 (knowing a constant tells nothing).
    """
    a, b = np.asarray(a), np.asarray(b)
    ra, rb = int(a.max()) + 1, int(b.max()) + 1
    n = a.size
    dtype = np.uint16 if ra * rb <= 1 << 16 else np.int64  # narrow codes: bincount is memory-bound
    code = a.astype(dtype) * dtype(rb) + b.astype(dtype)
    table = np.bincount(code, minlength=ra * rb).reshape(ra, rb).astype(np.float64)
    table = table[table.sum(1) > 0][:, table.sum(0) > 0]  # drop unused experts
    ra, rb = table.shape
    if min(ra, rb) < 2:
        return 0.0
    expected = np.outer(table.sum(1), table.sum(0)) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return float(np.sqrt(chi2 / (n * (min(ra, rb) - 1))))


def consecutive_layer_correlation(top1: np.ndarray, cols: np.ndarray | None = None) -> tuple[float | None, list[float]]:
    """Mean Cramér's V between the top-1 decisions of layers l and l+1, and the per-pair values."""
    cols = layer_columns(top1) if cols is None else cols
    pairs = [cramers_v(cols[layer], cols[layer + 1]) for layer in range(len(cols) - 1)]
    return (float(np.mean(pairs)) if pairs else None), pairs


def top_paths(experts_top1: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The `n` most frequent paths [n', L] (n' = min(n, unique)) and their counts, most frequent first.

    Ties are broken by path order (layer 0 most significant) so the result is deterministic.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    top1 = _check_top1(experts_top1)
    index = path_ids(top1)
    order = np.argsort(-index.counts, kind="stable")[:n]
    return top1[index.member[order]].copy(), index.counts[order].copy()


def path_metrics(experts_top1: np.ndarray, coverage_points: int = 40) -> dict:
    """Table 4 + Fig 4 (the `paths.json` record) from top-1 decisions [tokens, layers]."""
    top1 = _check_top1(experts_top1)
    cols = layer_columns(top1)
    index = path_ids(top1, cols)
    h = entropy_bits(index.counts)
    corr, per_pair = consecutive_layer_correlation(top1, cols)
    return {
        "num_tokens": int(top1.shape[0]),
        "num_layers": int(top1.shape[1]),
        "routing_entropy_bits": h,
        "unique_paths": int(index.counts.size),
        "effective_path_space": float(2.0 ** h),
        "consecutive_layer_correlation": corr,
        "consecutive_layer_correlation_per_pair": per_pair,
        "coverage": coverage_curve(index.counts, coverage_points),
    }
