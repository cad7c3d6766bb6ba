"""Token categories of the paper's Table 9 (Appendix C.4) and the classifier that applies them.

The paper lists 23 categories, lexical (word lists) and pattern-based (suffixes, digits,
capitalisation), checked in its table order; the first match wins, so "said" is a speech verb
although common_verbs lists it too. Words matching nothing fall into `other`. The word lists below
extend the paper's examples with common members of each class; the pattern rules follow the
paper's one-line descriptions plus a few exceptions (noted in `rule`) for frequent words the bare
suffix test would mislabel. `CATEGORY_TABLE` is the single source: Table 9 is rendered from it.
"""

from __future__ import annotations

import re
import unicodedata

OTHER = "other"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


PERSON_NAMES = _words("""
Andrea Richard Oprah Mary John Elizabeth James Robert Michael William David Joseph Thomas Charles
Christopher Daniel Matthew Anthony Donald Steven Paul Andrew Joshua Kenneth Kevin Brian George Edward
Ronald Timothy Jason Jeffrey Ryan Jacob Gary Nicholas Eric Jonathan Stephen Larry Justin Scott Brandon
Benjamin Samuel Frank Gregory Raymond Alexander Patrick Jack Dennis Jerry Tyler Aaron Jose Henry Adam
Douglas Nathan Peter Zachary Kyle Walter Harold Jeremy Ethan Carl Keith Roger Gerald Christian Terry
Sean Arthur Austin Noah Lawrence Jesse Joe Bryan Billy Jordan Albert Dylan Bruce Willie Gabriel Alan
Juan Logan Wayne Ralph Roy Eugene Randy Vincent Russell Louis Philip Bobby Johnny Bradley Barack Hillary
Patricia Jennifer Linda Barbara Susan Jessica Sarah Karen Nancy Lisa Betty Margaret Sandra Ashley
Kimberly Emily Donna Michelle Dorothy Carol Amanda Melissa Deborah Stephanie Rebecca Sharon Laura
Cynthia Kathleen Amy Shirley Angela Helen Anna Brenda Pamela Nicole Emma Samantha Katherine Christine
Debra Rachel Catherine Carolyn Janet Ruth Maria Heather Diane Virginia Julie Joyce Victoria Olivia
Kelly Christina Lauren Joan Evelyn Judith Megan Cheryl Martha Andrew Hannah Jacqueline Gloria Teresa
Ann Sara Madison Frances Kathryn Janice Jean Abigail Alice Judy Sophia Grace Denise Amber Doris
Marilyn Danielle Beverly Isabella Theresa Diana Natalie Brittany Charlotte Marie Kayla Alexis Lori
Trump Obama Biden Clinton Smith Johnson Williams Brown Jones Miller Davis Wilson Anderson Taylor
""")

TITLES_ROLES = _words("""
secretary minister commander winner professor ceo president chairman director manager officer chief
senator governor mayor king queen prince princess general captain lieutenant sergeant colonel judge
doctor dr mr mrs ms sir lord lady coach editor founder chancellor ambassador spokesman spokeswoman
spokesperson bishop pope priest dean principal superintendent treasurer chair vice deputy head
executive representative congressman congresswoman champion candidate nominee emperor chef
""")

SPEECH_VERBS = _words("""
said explained told asked claimed announced say says saying tell tells telling ask asks asking
stated added noted replied argued insisted suggested reported wrote declared answered mentioned
remarked responded commented admitted confirmed denied warned urged acknowledged recalled described
""")

ADVERBS_DISCOURSE = _words("""
especially actually particularly however therefore moreover furthermore nevertheless nonetheless
indeed thus hence consequently meanwhile instead otherwise besides anyway basically essentially
generally specifically notably importantly additionally similarly likewise accordingly obviously
clearly certainly definitely probably perhaps maybe apparently
""")

ADVERBS_MANNER = _words("""
quickly carefully successfully directly properly slowly easily effectively efficiently badly well
fast hard closely completely fully highly strongly simply clearly rapidly gently quietly loudly
safely openly freely widely deeply heavily poorly correctly exactly entirely precisely seriously
""")

ADVERBS_TIME = _words("""
now today recently always sometimes currently never often soon later already yet still again once
usually frequently rarely seldom occasionally early finally eventually previously formerly tomorrow
yesterday tonight then before afterwards ago immediately lately nowadays daily annually
""")

NATIONALITIES = _words("""
american british chinese european japanese french german italian spanish russian indian canadian
australian mexican brazilian korean african asian english irish scottish welsh dutch swedish
norwegian danish finnish polish greek turkish israeli iranian iraqi egyptian syrian arab arabic
pakistani vietnamese thai filipino indonesian nigerian ukrainian portuguese swiss austrian belgian
latin hispanic western eastern
""")

# Months count only when capitalised: lower-case "may" and "march" are usually verbs.
MONTHS = _words("January February March April May June July August September October November December")
TEMPORAL_WORDS = _words("""
monday tuesday wednesday thursday friday saturday sunday morning year years summer afternoon evening night day days
week weeks month months decade decades century centuries winter spring autumn fall hour hours minute
minutes second seconds weekend season seasons time times period era noon midnight dawn dusk date
""")

PREPOSITIONS = _words("""
in on at to for with by from about of into onto upon over under above below between among through
during before after against without within across behind beyond toward towards around near off out
up down per via since until till despite except along beside beneath inside outside throughout
""")

CONJUNCTIONS = _words("""
and or but because although while if nor so yet though unless whereas whether either neither
""")

DETERMINERS = _words("""
the a an this that these those some every each any no another such what which whose my your his her
its our their
""")

PRONOUNS = _words("""
he she they it who someone anybody i me you him us them we myself yourself himself herself itself
ourselves themselves whom anyone everyone everybody somebody nobody something anything everything
nothing mine yours hers ours theirs one
""")

QUANTIFIERS = _words("""
all many most million percent several few more less much both half billion thousand hundred
trillion dozen enough lots plenty numerous various least fewer majority minority none
""")

COMMON_VERBS = _words("""
is have go make take know said get be am are was were been being has had do does did done go goes
went gone makes made take takes took taken know knows knew known get gets got gotten see saw seen
come came give gave given find found think thought want use used work call try need feel become
became leave put mean keep let begin seem help show hear play run move like live believe hold bring
write provide sit stand lose pay meet include continue set learn change lead understand watch follow
stop create speak read spend grow open walk win offer remember love consider appear buy wait serve
die send expect build stay fall cut reach kill remain can could will would shall should may might
must
""")

ADJECTIVES = _words("""
good new important political economic public first last long great little own other old right big
high different small large next young social national local late hard major better best free full
special easy clear recent certain personal open red difficult available likely short single medical
current wrong private past foreign fine common poor natural significant similar hot dead central
happy serious ready simple left physical general environmental financial real low human whole
international military legal final main strong possible true bad black white
""")

# Frequent words the bare suffix rules would mislabel (e.g. "family" is not an -ly adverb).
LY_EXCEPTIONS = _words("family italy july supply apply reply fly ally rally belly jelly bully holy ugly only")
ING_ED_EXCEPTIONS = _words("""
thing things king ring spring string wing ceiling sing bring red bed need feed speed seed shed indeed
hundred sacred naked wicked
""")
ER_OR_EXCEPTIONS = _words("""
other another never ever however whether together rather either neither further order water number
paper major minor door floor color colour error letter matter better later power center corner river
mother father brother sister daughter her over under after for or per our your their their
""")

_NUMBER = re.compile(r"^\d+([.,]\d+)*$")
_ORDINAL = re.compile(r"^\d+(st|nd|rd|th)$", re.IGNORECASE)


def _lexical(words: frozenset[str], case_sensitive: bool = False):
    if case_sensitive:
        return lambda w: w in words
    return lambda w: w.lower() in words


def _suffix(suffixes: tuple[str, ...], min_len: int, exceptions: frozenset[str]):
    def rule(w: str) -> bool:
        low = w.lower()
        return w.isalpha() and len(w) >= min_len and low.endswith(suffixes) and low not in exceptions
    return rule


def _is_punctuation(w: str) -> bool:
    return bool(w) and all(unicodedata.category(c).startswith("P") for c in w)


# (name, type, examples (the paper's Table 9), rule description, predicate), in the paper's order.
_SPEC = [
    ("person_names", "Lexical", ["Andrea", "Richard", "Oprah", "Mary", "John", "Elizabeth"],
     f"capitalised member of a list of {len(PERSON_NAMES)} first/last names", _lexical(PERSON_NAMES, True)),
    ("titles_roles", "Lexical", ["secretary", "minister", "commander", "winner", "professor", "CEO"],
     f"member of a list of {len(TITLES_ROLES)} titles and roles", _lexical(TITLES_ROLES)),
    ("speech_verbs", "Lexical", ["said", "explained", "told", "asked", "claimed", "announced"],
     f"member of a list of {len(SPEECH_VERBS)} verbs of saying", _lexical(SPEECH_VERBS)),
    ("adverbs_discourse", "Lexical", ["especially", "actually", "particularly", "however", "therefore"],
     f"member of a list of {len(ADVERBS_DISCOURSE)} discourse adverbs", _lexical(ADVERBS_DISCOURSE)),
    ("adverbs_manner", "Lexical", ["quickly", "carefully", "successfully", "directly", "properly"],
     f"member of a list of {len(ADVERBS_MANNER)} manner adverbs", _lexical(ADVERBS_MANNER)),
    ("adverbs_time", "Lexical", ["now", "today", "recently", "always", "sometimes", "currently"],
     f"member of a list of {len(ADVERBS_TIME)} time adverbs", _lexical(ADVERBS_TIME)),
    ("adverbs_other", "Pattern", ["largely", "nearly", "mostly"],
     "Words ending in -ly not in above lists (alphabetic, >= 4 letters; except family, Italy, July, ...)",
     _suffix(("ly",), 4, LY_EXCEPTIONS)),
    ("nationalities", "Lexical", ["American", "British", "Chinese", "European", "Japanese"],
     f"member of a list of {len(NATIONALITIES)} nationality/region adjectives", _lexical(NATIONALITIES)),
    ("temporal_words", "Lexical", ["Monday", "January", "morning", "year", "summer", "afternoon"],
     f"capitalised month, or member of a list of {len(TEMPORAL_WORDS)} days, seasons and time units",
     lambda w: w in MONTHS or w.lower() in TEMPORAL_WORDS),
    ("prepositions", "Lexical", ["in", "on", "at", "to", "for", "with", "by", "from", "about"],
     f"member of a list of {len(PREPOSITIONS)} prepositions", _lexical(PREPOSITIONS)),
    ("conjunctions", "Lexical", ["and", "or", "but", "because", "although", "while", "if"],
     f"member of a list of {len(CONJUNCTIONS)} conjunctions", _lexical(CONJUNCTIONS)),
    ("determiners", "Lexical", ["the", "a", "an", "this", "that", "some", "every", "each"],
     f"member of a list of {len(DETERMINERS)} determiners", _lexical(DETERMINERS)),
    ("pronouns", "Lexical", ["he", "she", "they", "it", "who", "someone", "anybody"],
     f"member of a list of {len(PRONOUNS)} pronouns", _lexical(PRONOUNS)),
    ("quantifiers", "Lexical", ["all", "many", "most", "million", "percent", "several"],
     f"member of a list of {len(QUANTIFIERS)} quantifiers", _lexical(QUANTIFIERS)),
    ("common_verbs", "Lexical", ["is", "have", "go", "make", "take", "know", "said", "get"],
     f"member of a list of {len(COMMON_VERBS)} frequent verb forms", _lexical(COMMON_VERBS)),
    ("verbs", "Pattern", ["running", "created"],
     "Words ending in -ing or -ed (running, created); alphabetic, >= 4 letters, except thing, king, need, ...",
     _suffix(("ing", "ed"), 4, ING_ED_EXCEPTIONS)),
    ("adjectives", "Lexical", ["good", "new", "important", "political", "economic", "public"],
     f"member of a list of {len(ADJECTIVES)} frequent adjectives", _lexical(ADJECTIVES)),
    ("proper_nouns", "Pattern", ["London", "Google"],
     "Capitalized words not in name list (alphabetic, first letter upper case)",
     lambda w: w.isalpha() and w[0].isupper()),
    ("abstract_nouns", "Pattern", ["information", "decision", "happiness", "government"],
     "Words ending in -tion/-sion/-ness/-ment", _suffix(("tion", "sion", "ness", "ment"), 5, frozenset())),
    ("agent_nouns", "Pattern", ["player", "actor"],
     "Words ending in -er/-or (player, actor); alphabetic, >= 4 letters, except other, never, water, ...",
     _suffix(("er", "or"), 4, ER_OR_EXCEPTIONS)),
    ("numbers", "Pattern", ["1", "2", "100", "2024"],
     "Numeric digits (1, 2, 100, 2024), optionally with , or . separators", lambda w: bool(_NUMBER.match(w))),
    ("ordinals", "Pattern", ["1st", "2nd", "3rd"],
     "Numeric ordinals (1st, 2nd, 3rd)", lambda w: bool(_ORDINAL.match(w))),
    ("punctuation", "Pattern", [".", ",", "!", "?", ";", ":", "’", '"', "(", ")"],
     "Punctuation marks (. , ! ? ; : ’ \" ( )): every character is Unicode punctuation", _is_punctuation),
]

CATEGORY_TABLE: list[dict] = [{"name": n, "type": t, "examples": list(e), "rule": r} for n, t, e, r, _ in _SPEC]
CATEGORIES: list[str] = [row["name"] for row in CATEGORY_TABLE] + [OTHER]
_RULES = [(name, pred) for name, _, _, _, pred in _SPEC]


def normalise(token_text: str) -> str:
    """Strip BPE word-boundary markers (Ġ, ▁) and surrounding whitespace from a decoded token/word."""
    return token_text.replace("Ġ", " ").replace("▁", " ").strip()


def classify(word: str) -> str:
    """Category name of `word` (first matching row of Table 9, else 'other')."""
    w = normalise(word)
    if not w:
        return OTHER
    for name, pred in _RULES:
        if pred(w):
            return name
    return OTHER
