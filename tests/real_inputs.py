"""Fixtures of material a user brings from outside the project, built in the tests (no network):
plain-text corpora with paragraphs (some separated by whitespace-only lines), a third-party style
`tokenizer.json` trained here with the `tokenizers` library (no EOS of its own), and a small
lm-eval multiple-choice task folder (YAML + jsonl). Imported by tests/test_real_inputs.py and
tests/test_real_inputs_dag.py (`from real_inputs import ...`; pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from pathmoe.data import generate_documents

EOS = "<|endoftext|>"
SPECIALS = [EOS, "<|padding|>"]  # like GPT-NeoX: special tokens, but no eos_token declared anywhere
# Blank lines as real corpora have them: empty, spaces, a tab, a trailing carriage return.
BLANK_LINES = ["\n", "   \n", "\t\n", " \t \r\n"]


def write_corpus(folder: Path, n_files: int = 3, docs_per_file: int = 40, seed: int = 0) -> list[Path]:
    """`n_files` .txt files of `docs_per_file` story paragraphs each, paragraphs separated by blank
    lines that often hold only whitespace; returns the files."""
    folder.mkdir(parents=True, exist_ok=True)
    docs = list(generate_documents(n_files * docs_per_file, seed=seed))
    files = []
    for f in range(n_files):
        parts = []
        for i, doc in enumerate(docs[f * docs_per_file:(f + 1) * docs_per_file]):
            sentences = doc.split(". ")
            half = len(sentences) // 2  # a paragraph spans two lines of text
            parts.append(". ".join(sentences[:half]) + ".\n" + ". ".join(sentences[half:]) + "\n")
            parts.append(BLANK_LINES[i % len(BLANK_LINES)])
        path = folder / f"part_{f}.txt"
        path.write_text("".join(parts), encoding="utf-8")
        files.append(path)
    return files


def train_tokenizer_json(path: Path, texts: list[str], vocab_size: int = 600) -> Path:
    """A byte-level BPE `tokenizer.json` as a third party ships it: special tokens, no eos declared."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                       show_progress=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return path


TASK_YAML = """\
# A lab's own multiple-choice benchmark, as lm-eval task YAML.
task: lab_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: "@DATA@"
test_split: test
output_type: multiple_choice
doc_to_text: "{{question}}"
doc_to_target: label
doc_to_choice: choices
target_delimiter: " "
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


def mc_examples(n: int = 12, seed: int = 5, long_answer_words: int = 0, long_context_words: int = 0) -> list[dict]:
    """`{"question", "choices", "label"}` rows from held-out-like stories: the real next sentence vs
    the next sentence of another story. With `long_answer_words`, one extra example has an answer
    that long (longer than a small model's context); with `long_context_words`, one more has a
    context that long (to be cut from the left)."""
    docs = [d.split(". ") for d in generate_documents(2 * n + 2, seed=seed)]
    rows = []
    for i in range(n):
        a, b = docs[2 * i], docs[2 * i + 1]
        label = i % 2
        choices = [a[2] + ".", b[2] + "."] if label == 0 else [b[2] + ".", a[2] + "."]
        rows.append({"question": a[1] + ".", "choices": choices, "label": label})
    if long_answer_words:
        words = " ".join(docs[-1]).split()
        rows.append({"question": docs[-2][0] + ".", "label": 0,
                     "choices": [" ".join((words * 10)[:long_answer_words]) + ".", docs[-2][1] + "."]})
    if long_context_words:
        words = " ".join(docs[-2]).split()
        rows.append({"question": " ".join((words * 10)[:long_context_words]) + ".", "label": 1,
                     "choices": [docs[-1][0] + ".", docs[-1][1] + "."]})
    return rows


def write_task_dir(folder: Path, rows: list[dict]) -> Path:
    """A folder of task YAML + data as a lab keeps it (the YAML names its data by absolute path)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = (folder / "lab_mc.jsonl").resolve()
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "lab_mc.yaml").write_text(TASK_YAML.replace("@DATA@", str(data)))
    return folder


def direct_mc_scores(model, tokenizer, rows: list[dict], max_length: int) -> tuple[float, float]:
    """acc and acc_norm of a multiple-choice task from the model's own log-likelihoods: each answer
    " choice" scored after its context (cut from the left to the last max_length tokens fed)."""
    correct = correct_norm = 0
    for row in rows:
        scores = []
        for choice in row["choices"]:
            whole = tokenizer.encode(row["question"] + " " + choice, add_special_tokens=False)
            n_ctx = len(tokenizer.encode(row["question"], add_special_tokens=False))
            n_cont = len(whole) - n_ctx
            window = whole[-(max_length + 1):]
            x = torch.tensor([window[:-1]])
            with torch.no_grad():
                logp = torch.log_softmax(model(x).logits.float()[0], -1)  # [T, V]
            targets = torch.tensor(window[-n_cont:])
            ll = float(logp[-n_cont:].gather(1, targets[:, None]).sum())
            scores.append((ll, ll / len(choice)))  # lm-eval's acc_norm: per character of the choice
        correct += int(np.argmax([s[0] for s in scores]) == row["label"])
        correct_norm += int(np.argmax([s[1] for s in scores]) == row["label"])
    return correct / len(rows), correct_norm / len(rows)
