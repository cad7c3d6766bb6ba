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


def word_categories(token_ids: np.ndarray, tokenizer: Any) -> np.ndarray:
    """Category index (into CATEGORIES) of the word each token belongs to: [tokens] int16."""
    token_ids = np.asarray(token_ids)
    texts, starts = token_pieces(tokenizer, token_ids)
    core = {i: normalise(t) for i, t in texts.items()}
    alnum = {i: bool(c) and c.replace("'", "").isalnum() for i, c in core.items()}
    ids = token_ids.tolist()
    n = len(ids)
    new_word = np.ones(n, dtype=bool)
    for j in range(1, n):
        new_word[j] = starts[ids[j]] or not alnum[ids[j]] or not alnum[ids[j - 1]]
    bounds = np.append(np.flatnonzero(new_word), n)
    index = {name: c for c, name in enumerate(CATEGORIES)}
    out = np.empty(n, dtype=np.int16)
    cache: dict[tuple[int, ...], int] = {}
    for a, b in zip(bounds[:-1], bounds[1:]):
        key = tuple(ids[a:b])
        if key not in cache:
            cache[key] = index[classify("".join(core[i] for i in key))]
        out[a:b] = cache[key]
    return out


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
