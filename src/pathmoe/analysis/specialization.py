"""Linguistic specialisation of frequent paths (Fig 5): token categories per path and concentration.

Tokens are sub-words, categories are defined on words. Each token is therefore labelled with the
category of the whole word it belongs to: a token starts a new word when its raw piece carries the
tokenizer's word-boundary marker (Ġ / ▁ / leading whitespace), or when it or its predecessor is
not alphanumeric (punctuation is its own word). "ing" continuing "runn" is thus labelled like
"running". Concentration of a path is 1 - H(categories) / log2(#categories): 1 = every token of
the path is in one category, 0 = uniform over all categories.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .categories import CATEGORIES, classify, normalise
from .paths import entropy_bits, path_ids

_BOUNDARY = ("Ġ", "▁", " ", "\n", "\t", "Ċ")


def token_pieces(tokenizer: Any, vocab_ids: np.ndarray) -> tuple[dict[int, str], dict[int, bool]]:
    """Decoded text and "starts a word" flag of each distinct id (works for HF and `tokenizers`)."""
    to_piece = getattr(tokenizer, "id_to_token", None) or getattr(tokenizer, "convert_ids_to_tokens")
    texts, starts = {}, {}
    for i in np.unique(vocab_ids).tolist():
        piece = to_piece(int(i)) or ""
        text = tokenizer.decode([int(i)])
        texts[i] = text
        starts[i] = piece.startswith(_BOUNDARY) or text[:1].isspace()
    return texts, starts


def _dense_ids(code: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """(one index per distinct value, distinct-value id of every entry) of non-negative ints < bound.

    Small bounds (token ids, short words) use a presence table instead of a sort: O(n), and
    several times faster than `np.unique` on millions of tokens.
    """
    if bound <= 4 * len(code) + (1 << 16):
        present = np.zeros(bound, dtype=bool)
        present[code] = True
        ids = (np.cumsum(present) - 1)[code]
    else:
        ids = np.unique(code, return_inverse=True)[1].reshape(-1)
    rep = np.empty(int(ids.max()) + 1 if len(ids) else 0, dtype=np.int64)
    rep[ids] = np.arange(len(ids))
    return rep, ids


def _distinct_rows(rows: np.ndarray, base: int) -> tuple[np.ndarray, np.ndarray]:
    """`_dense_ids` of the rows of a [n, size] array of ints < base.

    Rows are folded into one int64 code column by column, re-densified before the code would
    overflow, so equal rows get equal codes without hashing.
    """
    code = np.zeros(len(rows), dtype=np.int64)
    bound = 1  # code < bound
    for col in rows.T:
        if bound > (1 << 62) // base:
            code = _dense_ids(code, bound)[1]
            bound = int(code.max()) + 1
        code = code * base + col
        bound *= base
    return _dense_ids(code, bound)


def word_categories(token_ids: np.ndarray, tokenizer: Any) -> np.ndarray:
    """Category index (into CATEGORIES) of the word each token belongs to: [tokens] int16.

    Runs on per-id lookup arrays (the paper-scale token set is millions of tokens over a
    vocabulary of tens of thousands): words are grouped by their token sequence and each distinct
    sequence is joined and classified once.
    """
    token_ids = np.asarray(token_ids).reshape(-1).astype(np.int64)
    n = token_ids.size
    if n == 0:
        return np.empty(0, dtype=np.int16)
    if token_ids.min() < 0:
        raise ValueError(f"token ids must be >= 0, found {int(token_ids.min())}")
    rep, inv = _dense_ids(token_ids, int(token_ids.max()) + 1)  # inv: position -> row of the lookup arrays
    vocab = token_ids[rep]
    texts, starts = token_pieces(tokenizer, vocab)
    core = [normalise(texts[i]) for i in vocab.tolist()]
    starts_word = np.array([starts[i] for i in vocab.tolist()], dtype=bool)
    alnum = np.array([bool(c) and c.replace("'", "").isalnum() for c in core], dtype=bool)
    new_word = np.ones(n, dtype=bool)
    new_word[1:] = starts_word[inv[1:]] | ~alnum[inv[1:]] | ~alnum[inv[:-1]]
    bounds = np.append(np.flatnonzero(new_word), n)
    first, length = bounds[:-1], np.diff(bounds)
    index = {name: c for c, name in enumerate(CATEGORIES)}
    word_cat = np.empty(len(first), dtype=np.int16)
    for size in np.unique(length).tolist():  # words of `size` tokens: one [words, size] matrix each
        words = np.flatnonzero(length == size)
        seqs = inv[first[words, None] + np.arange(size)]
        rep, seq_id = _distinct_rows(seqs, len(vocab))
        cats = [index[classify("".join(core[r] for r in seq))] for seq in seqs[rep].tolist()]
        word_cat[words] = np.asarray(cats, dtype=np.int16)[seq_id]
    return np.repeat(word_cat, length)


def concentration(fractions: np.ndarray) -> float:
    """1 - normalised Shannon entropy of a category distribution (1 = one category)."""
    return float(1.0 - entropy_bits(fractions) / np.log2(len(CATEGORIES)))


def specialization(experts_top1: np.ndarray, categories: np.ndarray, num_paths: int = 20) -> dict:
    """The `specialization.json` record for the `num_paths` most frequent paths.

    `categories` [tokens] are indices into CATEGORIES (see `word_categories`). mean_concentration is
    the unweighted mean over the listed paths.
    """
    if num_paths < 1:
        raise ValueError(f"num_paths must be >= 1, got {num_paths}")
    categories = np.asarray(categories)
    if categories.shape != experts_top1.shape[:1]:
        raise ValueError(f"categories shape {categories.shape} != ({experts_top1.shape[0]},) tokens")
    index = path_ids(experts_top1)
    chosen = np.argsort(-index.counts, kind="stable")[:num_paths]
    rows = []
    for pid in chosen:
        members = categories[index.ids == pid]
        frac = np.bincount(members, minlength=len(CATEGORIES)) / members.size
        rows.append({"path": experts_top1[index.member[pid]].tolist(), "count": int(index.counts[pid]),
                     "categories": {name: float(f) for name, f in zip(CATEGORIES, frac)},
                     "concentration": concentration(frac)})
    return {"paths": rows, "mean_concentration": float(np.mean([r["concentration"] for r in rows])),
            "category_names": CATEGORIES, "num_tokens": int(categories.size)}
