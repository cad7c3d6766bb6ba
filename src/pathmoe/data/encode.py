"""Streaming document -> token encoding with an exact, resumable cursor.

A shard's bytes depend on every document before it, so to rebuild shard k alone we must know
where in the document stream it starts. `TokenStream` walks raw/*.jsonl from a cursor
(document index, token offset inside that document) and reports the cursor after every `take`;
the shard index stores both ends of each shard. Encoding runs in `num_workers` spawned processes
(bounded windows of chunks, results in input order) so the output never depends on the worker
count; one worker encodes in-process on one thread.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from pathmoe.data.sources import read_raw_documents

_WORKER_TOKENIZER: Any = None


def _load(tokenizer_json: str) -> Any:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(tokenizer_json)


def _init_worker(tokenizer_json: str) -> None:
    global _WORKER_TOKENIZER
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one process = one core
    _WORKER_TOKENIZER = _load(tokenizer_json)


def _encode_chunk(texts: list[str]) -> list[list[int]]:
    return [e.ids for e in _WORKER_TOKENIZER.encode_batch(texts, add_special_tokens=False)]


class Encoder:
    """Encodes lists of texts to token ids (no special tokens added), in order."""

    def __init__(self, tokenizer_json: str | os.PathLike, num_workers: int = 1, chunk_docs: int = 256):
        self.tokenizer_json = str(tokenizer_json)
        self.num_workers = num_workers
        self.chunk_docs = chunk_docs
        self._tok: Any = None
        self._pool: Any = None  # started on first use: a fully resumed build never pays for it

    def encode_stream(self, texts: Iterator[str]) -> Iterator[list[int]]:
        """Token ids of each text, in input order, reading `texts` lazily in bounded windows."""
        chunks = iter(lambda: list(itertools.islice(texts, self.chunk_docs)), [])
        if self.num_workers <= 1:
            if self._tok is None:
                self._tok = _load(self.tokenizer_json)
            for chunk in chunks:
                yield from (self._tok.encode(t, add_special_tokens=False).ids for t in chunk)
            return
        if self._pool is None:
            self._pool = mp.get_context("spawn").Pool(self.num_workers, _init_worker, (self.tokenizer_json,))
        while window := list(itertools.islice(chunks, 4 * self.num_workers)):
            for ids in self._pool.map(_encode_chunk, window):
                yield from ids

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None

    def __enter__(self) -> "Encoder":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def count_lines(path: str | os.PathLike) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


class TokenStream:
    """All tokens of a raw jsonl file (each document followed by EOS), from a cursor onwards."""

    def __init__(self, path: Path, encoder: Encoder, eos_id: int, dtype: np.dtype,
                 start: tuple[int, int] = (0, 0), progress: Any = None):
        self.doc, offset = start
        self.dtype = dtype
        self.eos_id = eos_id
        self.progress = progress
        self._docs = encoder.encode_stream(itertools.islice(read_raw_documents(path), self.doc, None))
        self._pending = np.empty(0, dtype=dtype)  # rest of document self.doc
        self._offset = 0  # tokens of document self.doc already emitted
        if offset:
            self._next_doc()
            self._pending, self._offset = self._pending[offset:], offset

    @property
    def cursor(self) -> tuple[int, int]:
        return (self.doc, self._offset)

    def _next_doc(self) -> bool:
        ids = next(self._docs, None)
        if ids is None:
            return False
        self._pending = np.asarray([*ids, self.eos_id], dtype=self.dtype)
        return True

    def take(self, n: int) -> np.ndarray:
        """Up to `n` next tokens (fewer only at the end of the file); advances the cursor."""
        parts, need = [], n
        while need > 0:
            if not len(self._pending) and not (self._offset == 0 and self._next_doc()):
                break
            piece = self._pending[:need]
            parts.append(piece)
            need -= len(piece)
            self._pending = self._pending[len(piece):]
            self._offset += len(piece)
            if not len(self._pending):  # document finished (EOS included): cursor moves to the next
                self.doc, self._offset = self.doc + 1, 0
                if self.progress is not None:
                    self.progress.update(1)
        return np.concatenate(parts) if parts else np.empty(0, dtype=self.dtype)
