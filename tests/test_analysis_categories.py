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
