"""Content hashes of files, directories and configs: the identity every audit compares.

Only content counts, never mtimes or absolute paths, so two copies of a run on different machines
(or a run directory rsync'ed to an auditor) hash the same. A directory's hash covers its files'
relative paths and contents; `*.prov.json` records inside it are skipped so that recording a nested
artifact does not make its enclosing directory output look tampered.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import yaml

from pathmoe.io import read_json, sha256_file

RECORD_SUFFIX = ".prov.json"


class HashCache:
    """Memoise sha256 by (path, size, mtime_ns): a verify pass hashes shared inputs (shards,
    checkpoints) once instead of once per record that lists them."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int, int], str] = {}

    @staticmethod
    def _key(path: Path) -> tuple[str, int, int]:
        st = path.stat()
        return (str(path.resolve()), st.st_size, st.st_mtime_ns)

    def file(self, path: Path) -> str:
        key = self._key(path)
        if key not in self._cache:
            self._cache[key] = sha256_file(path)
        return self._cache[key]

    def add(self, path: Path, sha256: str) -> None:
        """Remember the sha256 of `path` as it is now, computed elsewhere (e.g. by another training
        rank hashing its share of a checkpoint's files)."""
        self._cache[self._key(path)] = sha256


# Bookkeeping that tools drop into directory outputs after the producing command ran (Snakemake
# stamps every directory output); not content.
IGNORED_FILES = {".snakemake_timestamp"}


def _dir_files(path: Path) -> list[tuple[str, Path]]:
    """Every regular file under `path` (symlinks followed) as (posix relative path, path), sorted."""
    files = []
    for root, dirs, names in os.walk(path, followlinks=True):
        dirs.sort()
        for name in names:
            if name.endswith(RECORD_SUFFIX) or name in IGNORED_FILES:
                continue
            full = Path(root) / name
            if full.is_file():
                files.append((full.relative_to(path).as_posix(), full))
    return sorted(files)


def hash_path(path: str | os.PathLike, cache: HashCache | None = None) -> dict[str, Any]:
    """Describe a file or directory by content: {"kind", "sha256", "bytes", "files"}.

    A directory's sha256 is the sha256 of the lines "<relative posix path>\\0<file sha256>\\n" in
    sorted order, so it is independent of where the directory lives and of file system order.
    """
    p = Path(path)
    cache = cache or HashCache()
    if p.is_file():
        return {"kind": "file", "sha256": cache.file(p), "bytes": p.stat().st_size, "files": 1}
    if p.is_dir():
        h = hashlib.sha256()
        total = 0
        files = _dir_files(p)
        for rel, full in files:
            h.update(f"{rel}\0{cache.file(full)}\n".encode())
            total += full.stat().st_size
        return {"kind": "dir", "sha256": h.hexdigest(), "bytes": total, "files": len(files)}
    raise FileNotFoundError(f"cannot hash {str(p)!r}: no such file or directory")


def newest_mtime(path: str | os.PathLike) -> float:
    """Latest modification time of a file, or of any file inside a directory (0.0 when empty)."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_mtime
    return max((full.stat().st_mtime for _, full in _dir_files(p)), default=0.0)


def load_config(path: str | os.PathLike) -> Any:
    """Parse a resolved config (JSON, or YAML by suffix) into plain Python objects."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{str(p)!r}: no such config file")
    if p.suffix.lower() in (".yaml", ".yml"):
        with open(p) as f:
            return yaml.safe_load(f)
    return read_json(p)


def canonical_json(obj: Any) -> str:
    """One spelling per value: sorted keys, no whitespace, so equal configs hash equal."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True)


def config_hash(obj: Any) -> str:
    """sha256 of the canonical JSON of an already-parsed config."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()
