"""Table 9 classifier, sub-word handling and the specialisation record (Fig 5)."""

import numpy as np
import pytest

from pathmoe.analysis.categories import CATEGORIES, CATEGORY_TABLE, classify
from pathmoe.analysis.specialization import concentration, specialization, word_categories

PAPER_ORDER = ["person_names", "titles_roles", "speech_verbs", "adverbs_discourse", "adverbs_manner",
               "adverbs_time", "adverbs_other", "nationalities", "temporal_words", "prepositions",
               "conjunctions", "determiners", "pronouns", "quantifiers", "common_verbs", "verbs", "adjectives",
               "proper_nouns", "abstract_nouns", "agent_nouns", "numbers", "ordinals", "punctuation"]


def test_table_has_the_papers_23_categories_in_order():
    assert [row["name"] for row in CATEGORY_TABLE] == PAPER_ORDER
    assert CATEGORIES == PAPER_ORDER + ["other"]
    for row in CATEGORY_TABLE:
        assert row["type"] in ("Lexical", "Pattern") and row["examples"] and row["rule"]


def test_every_table9_example_is_labelled_with_its_row():
    for row in CATEGORY_TABLE:
        for example in row["examples"]:
            if row["name"] == "common_verbs" and example == "said":
                continue  # listed twice in the paper; the earlier row wins (next test)
            assert classify(example) == row["name"], (example, row["name"])


def test_first_match_wins_in_the_papers_order():
    assert classify("said") == "speech_verbs"  # before common_verbs
    assert classify("Mary") == "person_names" and classify("London") == "proper_nouns"
    assert classify("quickly") == "adverbs_manner" and classify("largely") == "adverbs_other"


@pytest.mark.parametrize("word,expected", [
    ("Ġsaid", "speech_verbs"), ("▁the", "determiners"), ("  The ", "determiners"), ("July", "temporal_words"),
    ("family", "other"), ("may", "common_verbs"), ("May", "temporal_words"), ("thing", "other"), ("walked", "verbs"), ("happiness", "abstract_nouns"),
    ("teacher", "agent_nouns"), ("water", "other"), ("1,000", "numbers"), ("21st", "ordinals"),
    ("...", "punctuation"), ("“", "punctuation"), ("", "other"), ("hello", "other"), ("CEO", "titles_roles"),
])
def test_patterns_and_markers(word, expected):
    assert classify(word) == expected


class _FakeTokenizer:
    """Byte-level-BPE-like pieces: Ġ marks a word start."""

    def __init__(self, pieces):
        self.pieces = pieces

    def id_to_token(self, i):
        return self.pieces[i]

    def decode(self, ids):
        return "".join(self.pieces[i] for i in ids).replace("Ġ", " ")


def test_subwords_take_the_category_of_their_whole_word():
    tok = _FakeTokenizer(["The", "Ġrunn", "ing", "Ġdog", "Ġsa", "id", ".", "Ġ2", "nd", "Ġun", "said"])
    ids = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    got = [CATEGORIES[c] for c in word_categories(ids, tok)]
    assert got == ["determiners", "verbs", "verbs", "other", "speech_verbs", "speech_verbs", "punctuation",
                   "ordinals", "ordinals", "other", "other"]


def _reference_word_categories(token_ids, tokenizer):
    """The definition, token by token: a new word at a boundary marker or at/after a non-alphanumeric token."""
    from pathmoe.analysis.categories import normalise
    from pathmoe.analysis.specialization import token_pieces

    ids = [int(i) for i in token_ids]
    texts, starts = token_pieces(tokenizer, np.asarray(ids, dtype=np.int64))
    core = {i: normalise(t) for i, t in texts.items()}
    alnum = {i: bool(c) and c.replace("'", "").isalnum() for i, c in core.items()}
    out, word = [], []
    for j, i in enumerate(ids):
        if j and (starts[i] or not alnum[i] or not alnum[ids[j - 1]]):
            out += [classify("".join(core[w] for w in word))] * len(word)
            word = []
        word.append(i)
    out += [classify("".join(core[w] for w in word))] * len(word)
    return [CATEGORIES.index(c) for c in out]


def test_vectorised_word_categories_match_the_token_by_token_definition():
    pieces = ["The", "Ġrunn", "ing", "Ġdog", "Ġsa", "id", ".", "Ġ2", "nd", "Ġun", "said", "'s", "Ġ", "1", ",", "000",
              "ĠJohn", "ĠMay", "ly", "Ġquick", "ly", "er", "Ġ3", "rd", "!", "Ġhappi", "ness"]
    tok = _FakeTokenizer(pieces)
    rng = np.random.default_rng(0)
    for n in (0, 1, 2, 7, 3000):
        ids = rng.integers(0, len(pieces), n)
        got = word_categories(ids.astype(np.uint16), tok)
        assert got.dtype == np.int16 and got.tolist() == _reference_word_categories(ids, tok), n
    # long words: sequences of many tokens take the code-folding path (re-densified before overflow)
    ids = np.array(([9] + [2, 8, 5, 18, 20, 21, 26] * 12) * 50)
    assert word_categories(ids, tok).tolist() == _reference_word_categories(ids, tok)


@pytest.mark.parametrize("base,size", [(3, 5), (1000, 40), (70000, 9)])
def test_word_grouping_puts_equal_token_sequences_together_exactly(base, size):
    from pathmoe.analysis.specialization import _distinct_rows

    rng = np.random.default_rng(base)
    rows = rng.integers(0, base, (400, size))
    rows = rows[rng.integers(0, len(rows), 3000)]  # many repeats
    rows[:, 0] = np.where(rng.random(3000) < 0.5, rows[:, 0], base - 1)  # rows differing in one column
    rep, ids = _distinct_rows(rows, base)
    _, expected = np.unique(rows, axis=0, return_inverse=True)
    expected = expected.reshape(-1)
    same, same_expected = ids[:, None] == ids[None, :], expected[:, None] == expected[None, :]
    assert (same == same_expected).all() and len(rep) == len(np.unique(expected))
    assert (rows[rep][ids] == rows).all()  # each row's representative is an equal row


def test_specialization_concentration_closed_forms():
    one_hot = np.zeros(len(CATEGORIES))
    one_hot[3] = 1
    assert concentration(one_hot) == pytest.approx(1.0)
    assert concentration(np.ones(len(CATEGORIES)) / len(CATEGORIES)) == pytest.approx(0.0)
    # path (0,0): all punctuation; path (1,1): half numbers, half punctuation
    top1 = np.array([[0, 0]] * 6 + [[1, 1]] * 4)
    punct, num = CATEGORIES.index("punctuation"), CATEGORIES.index("numbers")
    cats = np.array([punct] * 6 + [num, num, punct, punct])
    rec = specialization(top1, cats, num_paths=5)
    assert [r["path"] for r in rec["paths"]] == [[0, 0], [1, 1]]
    assert rec["paths"][0]["categories"]["punctuation"] == 1.0
    assert rec["paths"][1]["categories"]["numbers"] == 0.5
    assert rec["paths"][1]["concentration"] == pytest.approx(1 - 1 / np.log2(len(CATEGORIES)))
    assert rec["mean_concentration"] == pytest.approx((1 + rec["paths"][1]["concentration"]) / 2)
