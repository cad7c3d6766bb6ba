"""Check a tree of artifacts against their provenance records.

Per artifact, in order of severity: `missing` (output gone), `tampered` (output bytes differ from
the record, or the record itself is unreadable), `stale-input` (an input changed or vanished
after the artifact was made, so the artifact no longer follows from what is on disk; for hub
downloads also a commit the config's revision lock no longer pins), `ok`.
`--reexec` then upgrades ok deterministic artifacts to `reexec-ok` or `reexec-mismatch`, or marks
them `refused` (a command re-execution will not run; pathmoe.audit.reexec).
Content is the truth: a newer mtime with unchanged bytes is only a warning.

Two kinds of artifact vouch for files that are no job's output. A token shard index
(`shards/index.json`) lists every shard with its sha256 and size, so the index's record covers the
shards through it: a shard that differs from its index entry makes the index `tampered`. HF exports
(`hf/step_<N>/`) and DeepSpeed checkpoints (`ds_ckpt/step_<N>/`) get their own records when
training writes them; a checkpoint directory without one is `tampered` too (only DeepSpeed tags
that `complete.json` lists count: an unlisted tag is a torn save that resume never loads).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from pathmoe.audit.hashing import RECORD_SUFFIX, HashCache, hash_path, newest_mtime
from pathmoe.audit.provenance import load_record, output_of_record, record_path
from pathmoe.io import read_json

OK, TAMPERED, MISSING, STALE = "ok", "tampered", "missing", "stale-input"
REEXEC_OK, REEXEC_MISMATCH, REFUSED = "reexec-ok", "reexec-mismatch", "refused"
FAILING = frozenset({TAMPERED, MISSING, STALE, REEXEC_MISMATCH, REFUSED})
CHECKPOINT_PARENTS = ("hf", "ds_ckpt")  # <run_dir>/hf/step_<N>/, <run_dir>/ds_ckpt/step_<N>/
MTIME_SLACK_S = 2.0  # coarse file-system timestamps; the record is written right after the output


@dataclass
class ArtifactResult:
    """The verdict on one artifact; `record` is the parsed record (None when unreadable)."""

    record_file: Path
    output: Path
    root: Path  # directory the record's relative paths resolve against
    status: str = OK
    details: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    record: dict[str, Any] | None = None

    @property
    def failed(self) -> bool:
        return self.status in FAILING

    def to_json(self, base: Path | None = None) -> dict[str, Any]:
        rel = os.path.relpath(self.output, base) if base else str(self.output)
        rec = self.record or {}
        return {"artifact": rel, "status": self.status, "details": self.details, "warnings": self.warnings,
                "record": str(self.record_file), "deterministic": rec.get("deterministic"),
                "sha256": (rec.get("output") or {}).get("sha256")}


def find_records(directory: str | os.PathLike) -> list[Path]:
    """All `*.prov.json` under `directory`, skipping atomic-write temporaries and .snakemake/."""
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"audit directory {str(d)!r}: no such directory")
    found = []
    for root, dirs, names in os.walk(d):
        dirs[:] = sorted(x for x in dirs if x != ".snakemake" and not x.startswith(".pathmoe-reexec"))
        found += [Path(root) / n for n in names if n.endswith(RECORD_SUFFIX) and not n.startswith(".")]
    return sorted(found)


def record_root(record_file: Path, record: dict[str, Any]) -> Path:
    """Where the job's working directory is now: the record's location minus the output's relative
    path (so a run directory copied elsewhere still verifies), else the recorded cwd."""
    rel = PurePosixPath(record["output"]["path"])
    out = output_of_record(record_file).absolute()
    if not rel.is_absolute() and out.parts[-len(rel.parts):] == rel.parts:
        return Path(*out.parts[: -len(rel.parts)])
    return Path(record["command"]["cwd"])


def resolve(root: Path, stored: str) -> Path:
    p = Path(stored)
    return p if p.is_absolute() else root / p


def shard_problem(index_path: Path, cache: HashCache) -> str | None:
    """The first shard that differs from its entry in a token shard index, as one line (None: all
    match, or `index_path` is no shard index)."""
    if index_path.name != "index.json" or not index_path.is_file():
        return None
    try:
        index = read_json(index_path)
        itemsize = np.dtype(index["dtype"]).itemsize
        splits = index["splits"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(splits, dict):
        return None
    for entries in splits.values():
        for entry in entries:
            shard = index_path.parent / entry["file"]
            if not shard.is_file():
                return f"shard {entry['file']} listed in {index_path.name} no longer exists"
            size, want = shard.stat().st_size, entry["num_tokens"] * itemsize
            if size != want:
                return f"shard {entry['file']}: {size} bytes, {index_path.name} says {want} (truncated or padded)"
            got = cache.file(shard)
            if got != entry["sha256"]:
                return f"shard {entry['file']}: sha256 {got[:12]} != {index_path.name}'s {entry['sha256'][:12]}"
    return None


HUB_STAMPS = ("manifest.json", "pathmoe_build.json")  # raw/manifest.json, tokenizer/pathmoe_build.json


def hub_revision_problems(output: Path) -> tuple[list[str], list[str]]:
    """(problems, warnings) of the hub commits a data output was downloaded at, against the revision
    lock it was pinned by: a commit the lock no longer pins means the config now gets other data."""
    from pathmoe.hub import read_lock

    stamp = output / HUB_STAMPS[1] if output.is_dir() else output
    if stamp.name not in HUB_STAMPS or not stamp.is_file():
        return [], []
    try:
        data = read_json(stamp)
        pins, lock = data.get("hub") or [], data.get("revision_lock")
    except (OSError, ValueError, AttributeError):
        return [], []
    if not pins or not lock:
        return [], []
    if not Path(lock).is_file():
        return [], [f"revision lock {lock} no longer exists: the hub commits of {stamp.name} cannot be checked"]
    try:
        now = {(e["kind"], e["repo"], e["revision"] or ""): e["commit"] for e in read_lock(Path(lock))}
    except ValueError as exc:
        return [str(exc)], []
    problems = []
    for pin in pins:
        want = now.get((pin["kind"], pin["repo"], pin["revision"] or ""))
        what = f"hub {pin['kind']} {pin['repo']!r} (revision {pin['revision']!r})"
        if want is None:
            problems.append(f"{what}: downloaded at commit {pin['commit'][:12]}, which {lock} no longer pins")
        elif want != pin["commit"]:
            problems.append(f"{what}: revision changed, downloaded at commit {pin['commit'][:12]} but {lock} now "
                            f"pins {want[:12]}")
    return problems, []


def check_artifact(record_file: Path, cache: HashCache, allow_missing_inputs: bool = False) -> ArtifactResult:
    """Verify one record's output and inputs against the files on disk."""
    output = output_of_record(record_file)
    try:
        rec = load_record(record_file)
    except ValueError as e:
        return ArtifactResult(record_file, output, output.parent, TAMPERED, [str(e)])
    res = ArtifactResult(record_file, output, record_root(record_file, rec), record=rec)
    want = rec["output"]
    if not output.exists():
        res.status = MISSING
        res.details.append(f"output {want['path']} no longer exists")
        return res
    got = hash_path(output, cache)
    if got["sha256"] != want["sha256"] or got["kind"] != want.get("kind", got["kind"]):
        res.status = TAMPERED
        sizes = f"{got['bytes']} vs {want.get('bytes')} bytes"
        if "dir" in (got["kind"], want.get("kind")):
            sizes = (f"{got['kind']} of {got['files']} files vs recorded {want.get('kind')} "
                     f"of {want.get('files')}, {sizes}")
        res.details.append(f"output {want['path']} sha256 {got['sha256'][:12]} != recorded {want['sha256'][:12]}"
                           f" ({sizes})")
        return res
    problem = shard_problem(output, cache)
    if problem:
        res.status = TAMPERED
        res.details.append(problem)
        return res
    if newest_mtime(output) > record_file.stat().st_mtime + MTIME_SLACK_S:
        res.warnings.append(f"output {want['path']} modified after its record (content unchanged)")
    for entry in rec.get("inputs", []):
        path = resolve(res.root, entry["path"])
        if not path.exists():
            msg = f"input {entry['path']} no longer exists"
            (res.warnings if allow_missing_inputs else res.details).append(msg)
            continue
        now = hash_path(path, cache)["sha256"]
        if now != entry["sha256"]:
            res.details.append(f"input {entry['path']} changed after the artifact was made "
                               f"(sha256 {now[:12]} != recorded {entry['sha256'][:12]})")
    problems, warnings = hub_revision_problems(output)
    res.details += problems
    res.warnings += warnings
    if res.details:
        res.status = STALE
    return res


def _listed_tags(ckpt_dir: Path) -> set[str]:
    try:
        return set(read_json(ckpt_dir / "complete.json")["tags"])
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def unrecorded_checkpoints(directory: str | os.PathLike) -> list[ArtifactResult]:
    """A `tampered` result for every checkpoint directory (hf/step_<N>, listed ds_ckpt/step_<N>)
    under `directory` that has no record: what a result was computed from must be hashed."""
    found = []
    for root, dirs, _ in os.walk(directory):
        dirs[:] = sorted(x for x in dirs if x != ".snakemake" and not x.startswith("."))
        parent = Path(root)
        if parent.name not in CHECKPOINT_PARENTS:
            continue
        listed = _listed_tags(parent) if parent.name == "ds_ckpt" else None
        for name in dirs:
            step_dir = parent / name
            if not name.startswith("step_") or record_path(step_dir).exists():
                continue
            if listed is not None and name not in listed:
                continue  # a torn DeepSpeed save: never loaded, deleted when that step is saved again
            found.append(ArtifactResult(record_path(step_dir), step_dir, parent, TAMPERED, [
                f"checkpoint {parent.name}/{name} has no hash record ({name}{RECORD_SUFFIX}): it was not "
                "written by `pathmoe train`, or its record was removed"]))
        dirs[:] = []
    return found


def verify_dir(
    directory: str | os.PathLike | Sequence[str | os.PathLike],
    reexec: bool = False,
    allow_missing_inputs: bool = False,
    reexec_timeout: float | None = 3600.0,
    cache: HashCache | None = None,
    reexec_skip_stages: Sequence[str] = (),
    trust: bool = False,
) -> list[ArtifactResult]:
    """Verify every record under `directory` (or several directories, e.g. results/ and reports/,
    whose jobs are then re-executed once even when their outputs span both), and flag checkpoint
    directories without a record; with `reexec`, re-run deterministic jobs except those of
    `reexec_skip_stages`, and with `trust` also jobs of directories the caller does not own (see
    pathmoe.audit.reexec)."""
    cache = cache or HashCache()
    dirs = [directory] if isinstance(directory, (str, os.PathLike)) else list(directory)
    records, seen = [], set()
    for d in dirs:
        for r in find_records(d):
            if r.resolve() not in seen:
                seen.add(r.resolve())
                records.append(r)
    results = [check_artifact(r, cache, allow_missing_inputs)
               for r in tqdm(records, desc="verify", unit="artifact", leave=False)]
    seen_dirs: set[Path] = set()
    for d in dirs:
        for res in unrecorded_checkpoints(d):
            if res.output.resolve() not in seen_dirs:
                seen_dirs.add(res.output.resolve())
                results.append(res)
    if reexec:
        from pathmoe.audit.reexec import reexec_results

        reexec_results(results, cache, reexec_timeout, frozenset(reexec_skip_stages), trust)
    return results


def summarize(results: list[ArtifactResult]) -> dict[str, int]:
    """Count of artifacts per status, statuses in a fixed order."""
    order = [OK, REEXEC_OK, REEXEC_MISMATCH, REFUSED, STALE, TAMPERED, MISSING]
    return {s: n for s in order if (n := sum(r.status == s for r in results))}
