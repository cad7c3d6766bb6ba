"""Offline lm-eval tasks built from the held-out split, so the embedded default evaluates with no hub.

All three tasks are real lm-eval YAML tasks over local jsonl files and run through the same harness
as the paper's benchmarks; only their data is ours:

- `offline_mc` (HellaSwag/PIQA style): context = the beginning of a held-out document up to a
  sentence boundary; choices = the real next sentence and three word-shuffled copies of it. The
  distractors hold exactly the same words (so the same unigram likelihood): only word order tells
  them apart, which even a tiny model learns in seconds while an untrained one cannot. Chance 1/4.
- `offline_next` (HellaSwag style, harder): contexts built the same way, but the distractors are the
  sentences at the same position of other held-out stories. Built-in stories follow one arc with a
  fixed cast, so the distractors are fluent and on-stage; telling them apart needs the context
  (who, where, what happened), which graded models separate well below ceiling. Chance 1/4.
- `offline_cloze` (LAMBADA style): predict the word that ends a sentence from the passage before it;
  acc = the target is the greedy continuation (is_greedy), perplexity of the target too.

Everything is derived deterministically from `<data_dir>/raw/val.jsonl` and `seed`. With the
model's context length (`max_length`), no example is longer than it: a context is cut from the
left, word by word, until context + every answer fit; a candidate whose answer alone does not fit
is skipped for the next one. `fit.json` beside the tasks counts both per task.
"""

from __future__ import annotations

import json
import random
import re
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from pathmoe.data.sources import read_raw_documents
from pathmoe.io import atomic_path, atomic_write_text

N_CHOICES = 4
MAX_CONTEXT_WORDS = 64  # keeps prompts well inside a smoke model's context (seq_len 128 tokens)
MIN_SENTENCE_WORDS = 4  # shorter sentences have too few distinct shuffles
FIT_FILE = "fit.json"  # per task: examples written, candidates skipped, contexts truncated
# (context, answers as lm-eval requests them) -> the context to use, or None to skip the candidate
Fit = Callable[[str, list[str]], "str | None"]


def _no_fit(context: str, answers: list[str]) -> str:
    return context


class ContextFit:
    """Keeps examples inside the model's context of `max_length` tokens.

    Called with a context and every answer as lm-eval will score it (with its leading space), it
    returns the context cut from the left by whole words until context + each answer fit, or
    None (the candidate is skipped) when not even the context's last word fits with an answer.
    "Fit" is lm-eval's own limit: context + answer may hold max_length + 1 tokens, since the
    model reads all but the last one, so lm-eval never has to cut an example itself.
    """

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2 tokens, got {max_length}")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.skipped = 0
        self.truncated = 0

    def _fits(self, context: str, answers: list[str]) -> bool:
        limit = self.max_length + 1
        return all(len(self.tokenizer.encode(context + a, add_special_tokens=False)) <= limit for a in answers)

    def __call__(self, context: str, answers: list[str]) -> str | None:
        words = context.split(" ")
        for start in range(len(words)):
            candidate = " ".join(words[start:])
            if self._fits(candidate, answers):
                self.truncated += start > 0
                return candidate
        self.skipped += 1
        return None

    def counts(self, examples: int) -> dict[str, int]:
        return {"examples": examples, "skipped_examples": self.skipped, "truncated_examples": self.truncated}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"^([A-Za-z][A-Za-z'\-]*)([.!?,;:\"']*)$")


def read_documents(val_jsonl: Path) -> list[str]:
    """The held-out documents' texts, in file order."""
    if not val_jsonl.is_file():
        raise FileNotFoundError(f"held-out documents not found: {val_jsonl} (run the data stage first)")
    return list(read_raw_documents(val_jsonl))


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(" ".join(text.split())) if s.strip()]


def _tail_words(sentences: list[str]) -> str:
    words = " ".join(sentences).split()
    return " ".join(words[-MAX_CONTEXT_WORDS:])


def _shuffles(sentence: str, rng: random.Random, n: int) -> list[str] | None:
    """`n` distinct word orders of `sentence`, none equal to it (None if the sentence has too few)."""
    words = sentence.split()
    seen = {sentence}
    out: list[str] = []
    for _ in range(50 * n):
        perm = words[:]
        rng.shuffle(perm)
        cand = " ".join(perm)
        if cand not in seen:
            seen.add(cand)
            out.append(cand)
            if len(out) == n:
                return out
    return None


def make_mc_examples(docs: list[str], seed: int, n_examples: int, fit: Fit = _no_fit) -> list[dict]:
    """`{"context", "choices", "label"}` rows: the real next sentence vs word shuffles of it."""
    rng = random.Random(seed)
    sentences = [split_sentences(doc) for doc in docs]
    sites = [(d, i) for d, sents in enumerate(sentences) for i in range(1, len(sents))]
    rng.shuffle(sites)
    rows = []
    for d, i in sites:
        sents = sentences[d]
        gold = sents[i]
        if len(gold.split()) < MIN_SENTENCE_WORDS:
            continue
        distractors = _shuffles(gold, rng, N_CHOICES - 1)
        if distractors is None:
            continue
        label = rng.randrange(N_CHOICES)
        choices = distractors[:label] + [gold] + distractors[label:]
        context = fit(_tail_words(sents[:i]), [" " + c for c in choices])
        if context is None:
            continue
        rows.append({"context": context, "choices": choices, "label": label})
        if len(rows) == n_examples:
            break
    return rows


def make_next_examples(docs: list[str], seed: int, n_examples: int, fit: Fit = _no_fit) -> list[dict]:
    """`{"context", "choices", "label"}` rows: the real next sentence vs the sentences at the same
    position in three other documents (fluent, on-topic distractors that only context rules out)."""
    rng = random.Random(seed + 2)
    sentences = [split_sentences(doc) for doc in docs]
    sites = [(d, i) for d, sents in enumerate(sentences) for i in range(1, len(sents))]
    rng.shuffle(sites)
    rows = []
    for d, i in sites:
        gold = sentences[d][i]
        pool = [sentences[o][i] for o in range(len(sentences)) if o != d and len(sentences[o]) > i]
        pool = sorted({s for s in pool if s != gold})
        if len(gold.split()) < MIN_SENTENCE_WORDS or len(pool) < N_CHOICES - 1:
            continue
        distractors = rng.sample(pool, N_CHOICES - 1)
        label = rng.randrange(N_CHOICES)
        choices = distractors[:label] + [gold] + distractors[label:]
        context = fit(_tail_words(sentences[d][:i]), [" " + c for c in choices])
        if context is None:
            continue
        rows.append({"context": context, "choices": choices, "label": label})
        if len(rows) == n_examples:
            break
    return rows


def make_cloze_examples(docs: list[str], seed: int, n_examples: int, fit: Fit = _no_fit) -> list[dict]:
    """`{"context", "target"}` rows: the passage up to a sentence's last word, and that word.

    Like LAMBADA, targets are words the passage makes predictable: preferably ones that already
    occur at least twice in it (recurring people, places, objects, not one-off fillers); other
    sentence-final words fill up only if there are too few.
    """
    rng = random.Random(seed + 1)
    seen_in_context, other = [], []
    for doc in docs:
        sents = split_sentences(doc)
        for i, sent in enumerate(sents):
            words = sent.split()
            m = _WORD.match(words[-1]) if len(words) >= MIN_SENTENCE_WORDS else None
            if m is None:
                continue
            target = m.group(1)
            context = _tail_words(sents[:i] + [" ".join(words[:-1])])
            row = {"context": context, "target": target}
            n_seen = sum(w.strip(".,!?;:\"'") == target for w in context.split())
            (seen_in_context if n_seen >= 2 else other).append(row)
    rng.shuffle(seen_in_context)
    rng.shuffle(other)
    rows = []
    for row in seen_in_context + other:
        context = fit(row["context"], [" " + row["target"]])
        if context is not None:
            rows.append({"context": context, "target": row["target"]})
            if len(rows) == n_examples:
                break
    return rows


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def build_offline_tasks(data_dir: str | Path, out_dir: str | Path, seed: int = 0, n_examples: int = 500,
                        max_length: int | None = None) -> Path:
    """Write `offline_mc` / `offline_next` / `offline_cloze` data + YAMLs under `out_dir`; return it.

    Pass the returned directory to `lm_eval.tasks.TaskManager(include_path=...)`. The YAMLs hold
    absolute `data_files` paths because lm-eval would resolve relative ones against the cwd.
    With `max_length` (the model's context in tokens, counted with `<data_dir>/tokenizer`), every
    example fits it (ContextFit); `fit.json` records per task the examples written, the candidates
    skipped and the contexts truncated. Deterministic: the same val.jsonl, seed, n_examples and
    max_length give byte-identical files.
    """
    if n_examples < 1:
        raise ValueError(f"n_examples must be >= 1, got {n_examples}")
    docs = read_documents(Path(data_dir) / "raw" / "val.jsonl")
    tokenizer = None
    if max_length is not None:
        from pathmoe.data import load_tokenizer

        tokenizer = load_tokenizer(Path(data_dir) / "tokenizer")
    out = Path(out_dir).resolve()
    builders = {"offline_mc": make_mc_examples, "offline_next": make_next_examples,
                "offline_cloze": make_cloze_examples}
    built, counts = {}, {}
    for name, make in builders.items():
        fit = ContextFit(tokenizer, max_length) if tokenizer is not None else None
        rows = make(docs, seed, n_examples, fit or _no_fit)
        if not rows:
            why = f" that fit {max_length} tokens" if fit is not None and fit.skipped else ""
            raise ValueError(f"{data_dir}/raw/val.jsonl yields no {name} examples{why}: need documents with "
                             f">= 2 sentences of >= {MIN_SENTENCE_WORDS} words")
        built[name] = rows
        counts[name] = fit.counts(len(rows)) if fit is not None else {"examples": len(rows)}
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        for name, rows in built.items():
            _write_jsonl(tmp / f"{name}.jsonl", rows)
            template = resources.files("pathmoe.eval").joinpath(f"task_templates/{name}.yaml").read_text()
            (tmp / f"{name}.yaml").write_text(template.replace("@DATA_FILE@", str(out / f"{name}.jsonl")))
        (tmp / FIT_FILE).write_text(json.dumps({"max_length": max_length, "tasks": counts}, indent=2, sort_keys=True) + "\n")
    return out


def build_counts(tasks_dir: str | Path) -> dict[str, dict[str, int]]:
    """Per offline task, the build-time counts of `fit.json` (empty when the file is absent)."""
    path = Path(tasks_dir) / FIT_FILE
    return json.loads(path.read_text())["tasks"] if path.is_file() else {}
