"""Pinned hub revisions: a lock file beside the experiment config, like a package lock.

A config names hub datasets and tokenizers by repo and `revision` (a branch, a tag, a commit or
null for the default branch); branches move. The first download resolves each (repo, revision) to
the commit it points at and writes it to `<config>.lock.yaml` (configs/paper-0.9b.yaml ->
configs/paper-0.9b.lock.yaml); every later download, by any user of the same config, fetches that
exact commit. The data stage records the commits it used (raw/manifest.json, the tokenizer's
stamp, shards/index.json), so a run's data identity names them and `pathmoe audit verify` flags
data whose commit the lock no longer pins. `resolve_commit` is the only function that asks the hub.
"""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path
from typing import Any

import yaml

from pathmoe.io import atomic_write_text

LOCK_SUFFIX = ".lock.yaml"
KINDS = ("dataset", "model")  # hub repo types: datasets; models (tokenizers, checkpoints)
COMMIT = re.compile(r"[0-9a-f]{40}")
HEADER = ("# Hub revisions pinned by pathmoe at their first download: each (kind, repo, revision) of the\n"
          "# config beside this file and the commit it resolved to (revision null = the default branch).\n"
          "# Commit this file with the config: every later download, on any machine, fetches exactly these\n"
          "# commits. Delete an entry to re-resolve it at the next download.\n")


def lock_path_for(config_file: str | os.PathLike) -> Path:
    """The lock file of an experiment config: configs/paper-0.9b.yaml -> configs/paper-0.9b.lock.yaml."""
    p = Path(config_file)
    return p.with_name(p.stem + LOCK_SUFFIX)


def resolve_commit(kind: str, repo: str, revision: str | None) -> str:
    """The commit hash `revision` of hub `repo` points at now (asks the hub)."""
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        info = (api.dataset_info if kind == "dataset" else api.model_info)(repo, revision=revision)
    except Exception as exc:  # huggingface_hub raises many types (offline, 404, auth)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"hub {kind} {repo!r} at revision {revision or 'default branch'!r} could not be resolved "
                         f"to a commit ({first})") from None
    if not info.sha or not COMMIT.fullmatch(info.sha):
        raise ValueError(f"hub {kind} {repo!r} at revision {revision!r}: the hub returned no commit hash ({info.sha!r})")
    return info.sha


def pin_entry(kind: str, repo: str, revision: str | None, commit: str) -> dict[str, Any]:
    """One pin as the lock file, the manifests and index.json record it."""
    return {"kind": kind, "repo": repo, "revision": revision, "commit": commit}


def _key(entry: dict[str, Any]) -> tuple[str, str, str]:
    return entry["kind"], entry["repo"], entry["revision"] or ""


def read_lock(path: Path) -> list[dict[str, Any]]:
    """The pins of a lock file ([] when it does not exist); a one-line ValueError when malformed."""
    if not path.is_file():
        return []
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"revision lock {str(path)!r} is not valid YAML ({str(exc).splitlines()[0]})") from None
    pins = data.get("pins") if isinstance(data, dict) else None
    if not isinstance(pins, list):
        raise ValueError(f"revision lock {str(path)!r}: expected a mapping with a 'pins' list")
    for i, e in enumerate(pins):
        ok = (isinstance(e, dict) and set(e) == {"kind", "repo", "revision", "commit"} and e["kind"] in KINDS
              and isinstance(e["repo"], str) and (e["revision"] is None or isinstance(e["revision"], str))
              and isinstance(e["commit"], str) and COMMIT.fullmatch(e["commit"]))
        if not ok:
            raise ValueError(f"revision lock {str(path)!r}: pins[{i}] must be {{kind: dataset|model, repo, revision, "
                             f"commit: <40 hex digits>}}, got {e!r}")
    return pins


def lock_text(pins: list[dict[str, Any]]) -> str:
    """The lock file's content: sorted pins, so equal pins give byte-identical files."""
    ordered = [pin_entry(e["kind"], e["repo"], e["revision"], e["commit"]) for e in sorted(pins, key=_key)]
    return HEADER + yaml.safe_dump({"pins": ordered}, sort_keys=False, default_flow_style=False)


class RevisionLock:
    """The pins of one lock file (`path` None: pins kept in memory, resolved once per process)."""

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = Path(path).absolute() if path is not None else None
        self._memory: list[dict[str, Any]] = []

    def pins(self) -> list[dict[str, Any]]:
        return read_lock(self.path) if self.path is not None else list(self._memory)

    def pinned(self, kind: str, repo: str, revision: str | None) -> str | None:
        """The commit the lock pins (kind, repo, revision) to, or None."""
        want = (kind, repo, revision or "")
        return next((e["commit"] for e in self.pins() if _key(e) == want), None)

    def pin(self, kind: str, repo: str, revision: str | None) -> str:
        """The pinned commit; resolved and written to the lock file the first time it is asked for.

        A revision that is already a commit hash is recorded as is, without asking the hub. Several
        jobs may pin at once (one per dataset): the lock file is updated under an exclusive lock.
        """
        if kind not in KINDS:
            raise ValueError(f"hub kind {kind!r} is unknown; allowed: {', '.join(KINDS)}")
        commit = self.pinned(kind, repo, revision)
        if commit is not None:
            return commit
        if self.path is None:
            commit = revision if revision and COMMIT.fullmatch(revision) else resolve_commit(kind, repo, revision)
            self._memory.append(pin_entry(kind, repo, revision, commit))
            return commit
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".flock"), "w") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            commit = self.pinned(kind, repo, revision)  # another job may have pinned it meanwhile
            if commit is None:
                commit = revision if revision and COMMIT.fullmatch(revision) else resolve_commit(kind, repo, revision)
                atomic_write_text(self.path, lock_text([*read_lock(self.path), pin_entry(kind, repo, revision, commit)]))
        return commit
