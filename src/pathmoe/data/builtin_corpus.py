"""Offline, deterministic English-like corpus: short stories from a template grammar.

Why a grammar and not random words: the CPU smoke pipeline must (1) train a tiny MoE in minutes
to clearly-above-chance accuracy on the offline multiple-choice and cloze tasks built from the
held-out documents, and (2) give the path-specialisation analysis real token categories to find.
So stories draw their people from a fixed cast (`CAST`: each first name always has the same
surname, title, nationality and home town, facts a model can learn across documents), and each
story has recurring entities (a protagonist, a second person, a town, an institution, a
project) introduced early and referred to again later
(by surname, pronoun of the right gender, place name); the closing sentence usually ends with one
of them, which makes the last word predictable from context (LAMBADA-style), and the sentences of
one story stay consistent with each other (HellaSwag-style next-sentence choice). Slot fillers
come from `lexicon.LEXICON` (every Table 9 category), with ~80 templates in six story stages and random
fillers so stories are learnable but not memorisable.

Document i depends only on (seed, i), so a larger `num_documents` extends a smaller one.
"""

from __future__ import annotations

import random
import re
from typing import Iterator

from pathmoe.data import lexicon as lx
from pathmoe.data.lexicon import LEXICON

__all__ = ["CAST", "LEXICON", "generate_document", "generate_documents"]

INTROS = (
    "On {D} {tw2}, the {Pn} {Pt} {P} arrived in {X} with a plan for a new {N}.",
    "In {M} {Y}, {P}, a {adj} {Pn} {Pt}, moved to {X} to work for the {O}.",
    "{P} was the {Pt} of the {O} in {X}, and everyone knew {him} as a {adj} {agent}.",
    "It was a {adj} {tw2} in {X} when {P}, the {Pn} {Pt}, first saw the old {N}.",
    "For {K} years, {P} had {dadv} dreamed of building a {N} in {X}.",
    "{P} {tadv} remembers the {ordinal} of {M}, the day {he} became {Pt} of the {O}.",
)
# Story arc: the body is one stage after another (templates sampled within a stage), so a
# sentence is predictable from its neighbours (stage, entities), not only from the whole story.
SETTING = (
    "{quant_cap} of the {agents} in {X} were {ing} near the {N}.",
    "Each {tw3}, the {agents} of {X} came to see the {N}.",
    "These {agents} came from {X2}, and those from {X} came later.",
    "Anybody who has visited {X} can find the {N} without a map.",
    "{Ps} {say} that {X} was a {adj} place {prep3} {agents}.",
    "{His} {Pn} friends {say} that {he} would {tadv} love {X}.",
    "{He} had never {ed} a {N} before, {conj2} {he} learned {madv}.",
)
PLAN = (
    "{He} {say} that the {N} would be {ed} before the {ordinal} of {M}.",
    "\"We must work {madv},\" {Pf} {say}, \"because the people of {X} are waiting.\"",
    "{dadv_cap}, {Ps} {say} that the {A} was {adj} for {X}.",
    "The {O} {dadv} agreed to pay for the {A} of the {N}.",
    "{Ps} {say} the {Gazette} that {num} percent of {X} wanted the {N}.",
    "\"If the {N} is not {ed} by {M}, we will make it {adj} again,\" {Ps} {say}.",
    "{He} made a list: the {N}, the {A}, and a dozen {agents} from {X}.",
    "The {A} cost about {num} million dollars (nearly {num} percent of the budget).",
    "{He} {madv} {ed} {his} {A} to the {O}.",
    "In {Y}, the {O} {tadv} held a {A} at the {N}.",
)
MEET = (
    "{Qf} {Qs}, a {Qn} {Qt}, {say} that the plan was {oadv} {adj}.",
    "{Ps} {tadv} met {Qf} {Qs}, the {Qt} of the {O}, at the {N} on {D} {tw2}.",
    "On the {ordinal} of {M}, {Qf} {Qs} {ed} the {O} to support {Ps}.",
    "{Qf} {Qs} {tadv} became the {Qt} of the {O}.",
    "That {tw3}, {Ps} wrote to {Qf} {Qs}, a {Qn} {Qt} from {X2}.",
)
TALK = (
    "\"Is this really the {N} of {X}?\" {Qf} asked {Ps}.",
    "\"The {A} is {adj},\" {Qs} {say}, \"{conj3} the {N} must be {adj} too.\"",
    "\"Do you know what we can make here?\" {Pf} asked {Qf}.",
    "{Qs} {say}: \"Come and see the {N}!\"",
    "\"I think you are right,\" {Qf} told {Ps}.",
    "\"We have {tadv} needed a {N},\" {Pf} {say} the {agents}.",
    "The {Pn} {Pt} {say} {Qf} that {his} {A} was {oadv} {adj}.",
    "{Qf} asked whether {Ps} would stay in {X} for the {tw4}.",
    "Either the {O} would pay for the {N}, or {Ps} would find another way.",
)
WORK = (
    "By {M}, {num} {agents} had {ed} the {A} of the {N}.",
    "{He} walked {madv} to the {N} every {tw3}, {conj2} {he} {tadv} waited for {Qf}.",
    "{Ps} {madv} {ed} the plan, {conj} the {O} {tadv} wanted more {A}.",
    "{Qs} and {Ps} {tadv} spent the {tw3} {ing} at the {N}.",
    "{His} {A} of the {N} {madv} {ed} the {O}.",
    "{He} {tadv} told the {agents} of {X} about the {A}.",
    "{dadv_cap}, the {N} was {oadv} {adj}, {conj2} {Ps} did not give up.",
    "Every {tw3}, {Ps} went {prep} the {N} {prep2} {Qf}.",
    "{Ps} {tadv} worked with {num} {agents} on the {N}.",
    "{He} wrote {madv} to the {Pt} of {X2} about the {A}.",
    "Many {agents} {say} that {Ps} was {ing} too hard.",
    "{Qf} and {Pf} {madv} {ed} the {A} on {D}.",
    "{dadv_cap}, {Qs} was {ing} for the {O} in {X2}.",
    "When {Qf} {ed}, {Ps} was {ing} at the {N}.",
    "Although the {tw4} was {adj}, the {A} continued {madv}.",
    "{He} wanted to go to {X2} during the {tw4}, but {he} could not take the time.",
    "Unless the {O} changed its mind, {Ps} would go back to {X2}.",
    "On {D}, {Pf} took the {ordinal} train from {X2} to {X}.",
    "The {A} of the {N} {tadv} began on {D} {tw2}.",
    "Some {agents} think that the {N} will get {adj} soon; others are not so sure.",
)
RESULT = (
    "The {agents} of the {O} {madv} {ed} {Ps}.",
    "After the {A}, {Pf} {say} that {he} was {oadv} happy in {X}.",
    "The {N} was {oadv} {ed} by {Qs}, who was a {adj} {Qt}.",
    "Most of the {agents} {madv} {ed} with the {A}.",
    "{quant_cap} {Qn} {agents} came to {X} for the {A}.",
    "The {adj} {agent} from {X2} {say} that {Ps} was a {adj} {Pt}.",
    "Someone from {X2} {say} that the {N} was {adj}, {conj2} nobody in {X} agreed.",
    "The {Gazette} reported that the {N} cost {num} thousand dollars.",
    "{Ps}'s {A} made {him} a well-known {Pt} in {X}.",
)
# (templates, fewest, most sentences drawn) per stage, in story order
STAGES = ((SETTING, 1, 2), (PLAN, 1, 3), (MEET, 1, 1), (TALK, 1, 2), (WORK, 2, 4), (RESULT, 1, 2))
CLOSINGS = (
    "Years later, the {agents} of {X} still spoke {madv} about {Pf} {Ps}.",
    "In the end, everyone agreed that the {N} belonged to {X}.",
    "{Qf} smiled and {madv} thanked {Ps}.",
    "That is why the {N} is still called the {N} of {Ps}.",
    "When people ask who built the {N}, they {tadv} name {Pf} {Ps}.",
    "{He} {say} that {his} heart would always belong to {X}.",
    "Even today, the {O} remembers the {A} of {Pf} {Ps}.",
    "And so the {N} was finished, and {Pf} {tadv} returned to {X}.",
    "The last visitor of the {tw3} was {Qf} {Qs}.",
    "Nobody in {X} ever forgot the {Pt} named {Ps}.",
    "The {Gazette} called it the {adj} {A} in the history of {X}.",
    "{Qf} {Qs} {tadv} wrote a letter to {Pf} {Ps}.",
)
_SLOT = re.compile(r"\{(\w+)\}")
_ARTICLE = re.compile(r"\b([Aa]) (?![Ee]u|[Uu])([aeiouAEIOU])")  # "a old" -> "an old"
_PRONOUNS = {
    "m": {"he": "he", "He": "He", "his": "his", "His": "His", "him": "him"},
    "f": {"he": "she", "He": "She", "his": "her", "His": "Her", "him": "her"},
}


def _cap(word: str) -> str:
    return word[:1].upper() + word[1:]


def _plural(noun: str) -> str:
    return noun + "s"


def _make_cast() -> list[dict[str, str]]:
    """A fixed world: each first name belongs to one character with a fixed surname, title,
    nationality and home town, so entity associations recur across stories (learnable facts)."""
    rng = random.Random("pathmoe-builtin/cast")
    names = [(n, "m") for n in lx.MALE_NAMES] + [(n, "f") for n in lx.FEMALE_NAMES]
    surnames = rng.sample(lx.SURNAMES, len(names))
    return [{"first": n, "gender": g, "surname": s, "title": rng.choice(lx.TITLES_ROLES),
             "nationality": rng.choice(lx.NATIONALITIES), "home": rng.choice(lx.PLACES)}
            for (n, g), s in zip(names, surnames)]


CAST = _make_cast()


def _story_entities(rng: random.Random) -> dict[str, str]:
    """Fixed slot values of one story: the same people, town and project recur throughout."""
    p, q = rng.sample(CAST, 2)
    gender, first, surname, title = p["gender"], p["first"], p["surname"], p["title"]
    q_first, q_surname, q_title = q["first"], q["surname"], q["title"]
    place = p["home"] if rng.random() < 0.75 else rng.choice(lx.PLACES)
    place2 = rng.choice([x for x in lx.PLACES if x != place])
    ent = {
        "P": f"{first} {surname}", "Pf": first, "Ps": surname, "Pt": title,
        "Pn": p["nationality"],
        "Qf": q_first, "Qs": q_surname, "Qt": q_title, "Qn": q["nationality"],
        "X": place, "X2": place2, "O": f"{place} {rng.choice(lx.ORGANISATIONS)}",
        "N": rng.choice(lx.OBJECT_NOUNS), "A": rng.choice(lx.ABSTRACT_NOUNS),
        "D": rng.choice(lx.WEEKDAYS), "M": rng.choice(lx.MONTHS),
        "Y": str(rng.randint(1950, 2030)), "K": str(rng.randint(2, 40)),
        "Gazette": f"{place} Gazette",
    }
    ent.update(_PRONOUNS[gender])
    return ent


def _filler(slot: str, rng: random.Random) -> str:
    """A fresh random word for a non-entity slot (drawn anew at every occurrence)."""
    table = {
        "adj": lx.ADJECTIVES, "madv": lx.ADVERBS_MANNER, "tadv": lx.ADVERBS_TIME,
        "dadv": lx.ADVERBS_DISCOURSE, "oadv": lx.ADVERBS_OTHER, "say": lx.SPEECH_VERBS,
        "ing": lx.ING_VERBS, "ed": lx.ED_VERBS, "agent": lx.AGENT_NOUNS, "tw2": ("morning", "evening", "afternoon", "night"),
        "tw3": ("morning", "evening", "week", "weekend", "month", "summer", "winter"),
        "tw4": ("summer", "winter", "spring", "autumn", "season", "year", "decade"),
        "conj": ("and", "but", "because", "although", "while"), "conj2": ("but", "yet", "and", "so"),
        "conj3": ("and", "so", "but"), "prep": ("to", "into", "across", "near"),
        "prep2": ("with", "after", "before", "for"), "prep3": ("for", "with", "to"),
    }
    if slot in table:
        return rng.choice(table[slot])
    if slot == "agents":
        return _plural(rng.choice(lx.AGENT_NOUNS))
    if slot == "quant_cap":
        return _cap(rng.choice(("all", "many", "most", "several", "few", "dozens", "both")))
    if slot == "dadv_cap":
        return _cap(rng.choice(lx.ADVERBS_DISCOURSE))
    if slot == "ordinal":
        return rng.choice(lx.ORDINALS)
    if slot == "num":
        return str(rng.choice((rng.randint(2, 12), rng.randint(10, 99), rng.randint(100, 999))))
    raise KeyError(f"template slot {{{slot}}} has no filler")


def _render(template: str, ent: dict[str, str], rng: random.Random) -> str:
    return _SLOT.sub(lambda m: ent[m.group(1)] if m.group(1) in ent else _filler(m.group(1), rng), template)


def generate_document(seed: int, index: int) -> str:
    """Story number `index` of the corpus with this seed (about 100-200 words)."""
    rng = random.Random(f"pathmoe-builtin/{seed}/{index}")
    ent = _story_entities(rng)
    sentences = [rng.choice(INTROS)]
    for templates, lo, hi in STAGES:
        sentences += rng.sample(templates, rng.randint(lo, hi))
    sentences.append(rng.choice(CLOSINGS))
    text = " ".join(_render(s, ent, rng) for s in sentences)
    return _cap(_ARTICLE.sub(r"\1n \2", text))


def generate_documents(num_documents: int, seed: int = 0) -> Iterator[str]:
    """Yield `num_documents` stories; the same (num_documents, seed) always gives the same text."""
    if num_documents <= 0:
        raise ValueError(f"source.num_documents must be a positive integer, got {num_documents!r}")
    for i in range(num_documents):
        yield generate_document(seed, i)
