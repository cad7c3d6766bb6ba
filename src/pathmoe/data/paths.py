"""The local files a dataset config names: found, checked and listed before any job runs.

A dataset reads local files from two places: `source.paths` (files and globs of a `local` source)
and `tokenizer.name` when it points at a `tokenizer.json` file or a folder instead of a hub name
(an `hf` source's `path` that can only be a local folder must exist too).
Config validation checks every one of them here (it exists, is readable, is not empty, has a
supported suffix), so a typo fails at parse time with the file's name instead of deep inside a
job after Snakemake already removed that job's old outputs. The Snakefile lists the same files as
rule inputs (`source_input_files`, `tokenizer_input_files`), so editing one reruns exactly the jobs that read it.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path
from typing import Any

LOCAL_SUFFIXES = (".txt", ".jsonl", ".parquet")
# A hub repo id: "name" or "org/name" (letters, digits, '-', '_', '.').
HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# Files that make a folder a Hugging Face tokenizer folder (tokenizer.json for fast tokenizers;
# tokenizer_config.json also covers folders that transformers converts to a fast tokenizer).
TOKENIZER_FOLDER_FILES = ("tokenizer.json", "tokenizer_config.json")


def _check_readable_file(path: Path, what: str) -> None:
    if not os.access(path, os.R_OK):
        raise ValueError(f"{what}: {str(path)!r} is not readable (permission denied)")
    if path.stat().st_size == 0:
        raise ValueError(f"{what}: {str(path)!r} is empty (0 bytes)")


def expand_local_paths(patterns: list[str]) -> list[Path]:
    """Every file matched by the patterns, in order (sorted within one glob); no duplicates.

    Raises FileNotFoundError for a pattern matching no file and ValueError for a matched file
    with an unsupported suffix, an unreadable or an empty one; each message names the file.
    """
    files: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
        matches = [m for m in matches if os.path.isfile(m)]
        if not matches:
            raise FileNotFoundError(f"source.paths: no file matches {pattern!r}")
        for m in matches:
            if not m.endswith(LOCAL_SUFFIXES):
                raise ValueError(f"source.paths: {m!r} has an unsupported suffix; allowed: {list(LOCAL_SUFFIXES)}")
            path = Path(m)
            _check_readable_file(path, "source.paths")
            if path not in files:
                files.append(path)
    return files


def _looks_like_path(name: str) -> bool:
    """A value no hub repo id can be: absolute, ~ or ./ prefixed, a .json file or a deep path."""
    return (os.path.isabs(name) or name.startswith((".", "~")) or name.endswith(".json") or "\\" in name
            or name.count("/") > 1)


def local_tokenizer_path(name: str) -> Path | None:
    """The local `tokenizer.json` file or tokenizer folder `tokenizer.name` names, or None for a hub name.

    A name that exists on disk is local; one that does not exist but can only be a path (see
    `_looks_like_path`) is an error, as is a folder without tokenizer files or an empty file.
    """
    path = Path(os.path.expanduser(name))
    if path.is_dir():
        if not any((path / f).is_file() for f in TOKENIZER_FOLDER_FILES):
            raise ValueError(f"tokenizer.name: folder {name!r} holds neither {' nor '.join(TOKENIZER_FOLDER_FILES)}")
        for f in TOKENIZER_FOLDER_FILES:
            if (path / f).is_file():
                _check_readable_file(path / f, "tokenizer.name")
        return path
    if path.is_file():
        _check_readable_file(path, "tokenizer.name")
        return path
    if _looks_like_path(name) or not HUB_NAME.match(name):
        raise FileNotFoundError(f"tokenizer.name {name!r}: no such file or folder (give a tokenizer.json file, "
                                "a folder holding one, or a hub name like 'org/name')")
    return None


def tokenizer_files(path: Path) -> list[Path]:
    """The files of a local tokenizer (the file itself, or every file of the folder), sorted."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.is_file())


def source_input_files(cfg: dict[str, Any]) -> list[str]:
    """The local files the `fetch` step of a validated dataset config reads (none for builtin/hf)."""
    if cfg["source"]["kind"] != "local":
        return []
    return [str(f) for f in expand_local_paths(cfg["source"]["paths"])]


def tokenizer_input_files(cfg: dict[str, Any]) -> list[str]:
    """The local files the `tokenizer` step reads when `tokenizer.name` is a local file or folder."""
    tok = cfg["tokenizer"]
    local = local_tokenizer_path(tok["name"]) if tok["kind"] == "hf" else None
    return [] if local is None else [str(f) for f in tokenizer_files(local)]


def check_dataset_paths(cfg: dict[str, Any]) -> None:
    """Raise a one-line error naming the first local file of the config that is missing or unusable."""
    source_input_files(cfg)
    tokenizer_input_files(cfg)
    src = cfg["source"]
    if src["kind"] == "hf" and not os.path.exists(os.path.expanduser(src["path"])) and (
            _looks_like_path(src["path"]) or not HUB_NAME.match(src["path"])):
        raise FileNotFoundError(f"source.path {src['path']!r}: no such folder (give a hub dataset name like "
                                "'org/name' or a local dataset folder)")
