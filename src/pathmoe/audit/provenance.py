"""Provenance records: one `<output>.prov.json` beside every artifact, saying how it was made.

A record is self-contained (it repeats the job's context for each output) so an artifact can be
copied anywhere with its record and still be audited. Paths are stored relative to the command's
working directory whenever they lie inside it: that is what makes a run directory relocatable
(verify re-roots them) and what `verify --reexec` needs to rebuild the job in a scratch directory.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from pathmoe.audit.environment import code_version, current_user, hardware, package_versions
from pathmoe.audit.hashing import RECORD_SUFFIX, HashCache, config_hash, hash_path, load_config
from pathmoe.io import atomic_write_json, read_json

SCHEMA = "pathmoe-provenance/1"
# The resolved configs of docs/ARCHITECTURE.md: an input with one of these names is the job's
# config when `--config` is not given, so wrapped Snakemake rules record config hash and seed.
RESOLVED_CONFIG_NAMES = ("run_config.json", "train_config.json", "dataset_config.json")
PathLike = str | os.PathLike


def record_path(output: PathLike) -> Path:
    """`results/x/tokenizer/` -> `results/x/tokenizer.prov.json` (beside, never inside, the output)."""
    p = Path(os.path.normpath(output))
    return p.with_name(p.name + RECORD_SUFFIX)


def output_of_record(record_file: PathLike) -> Path:
    """Inverse of record_path: where the artifact described by a record file lives."""
    p = Path(record_file)
    if not p.name.endswith(RECORD_SUFFIX):
        raise ValueError(f"{str(p)!r} is not a provenance record (expected a name ending in {RECORD_SUFFIX})")
    return p.with_name(p.name[: -len(RECORD_SUFFIX)])


def stored_path(path: PathLike, cwd: Path) -> str:
    """Posix path relative to `cwd` when inside it, else the absolute normalised path."""
    p = Path(path)
    full = Path(os.path.normpath(p if p.is_absolute() else cwd / p))
    try:
        return full.relative_to(cwd).as_posix()
    except ValueError:
        return full.as_posix()


def _iso(t: datetime | str) -> str:
    if isinstance(t, str):
        return t
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _check_exist(paths: Sequence[PathLike], cwd: Path, flag: str) -> None:
    for p in paths:
        full = Path(p) if Path(p).is_absolute() else cwd / p
        if not full.exists():
            raise FileNotFoundError(f"{flag} {str(p)!r}: no such file or directory")


def _config_entry(config: PathLike | None, cwd: Path) -> tuple[dict[str, Any] | None, Any]:
    if config is None:
        return None, None
    full = Path(config) if Path(config).is_absolute() else cwd / config
    parsed = load_config(full)
    return {"path": stored_path(config, cwd), "sha256": config_hash(parsed)}, parsed


def record_provenance(
    outputs: Sequence[PathLike],
    inputs: Sequence[PathLike],
    argv: Sequence[str],
    started: datetime | str,
    ended: datetime | str,
    config: PathLike | None = None,
    seed: int | None = None,
    *,
    deterministic: bool = False,
    cwd: PathLike | None = None,
    cache: HashCache | None = None,
) -> list[Path]:
    """Write `<output>.prov.json` for every output of one finished job; return the record paths.

    Relative paths are taken relative to `cwd` (default: the current directory), the directory the
    job ran in. The config file, if given, is also hashed as an input; `seed` defaults to the
    config's top-level "seed". `deterministic` promises that re-running `argv` on the same inputs
    gives byte-identical outputs (what `verify --reexec` checks). `cache` may hold file hashes
    computed beforehand (training ranks hash a checkpoint's files in parallel).
    """
    if not outputs:
        raise ValueError("--outputs: at least one output is required")
    base = Path(os.path.abspath(cwd if cwd is not None else os.getcwd()))
    _check_exist(outputs, base, "--outputs")
    _check_exist(inputs, base, "--inputs")
    cfg, parsed = _config_entry(config, base)
    if seed is None and isinstance(parsed, dict) and isinstance(parsed.get("seed"), int):
        seed = parsed["seed"]
    all_inputs = list(inputs) + ([config] if config is not None else [])
    cache = cache or HashCache()
    input_entries, seen = [], set()
    for p in all_inputs:
        rel = stored_path(p, base)
        if rel not in seen:
            seen.add(rel)
            input_entries.append({"path": rel, **hash_path(base / rel, cache)})
    output_rels = [stored_path(p, base) for p in outputs]
    context = {
        "schema": SCHEMA,
        "job": {"id": uuid.uuid4().hex, "outputs": output_rels},
        "inputs": input_entries,
        "config": cfg,
        "code": code_version(),
        "packages": package_versions(),
        "hardware": hardware(),
        "seed": seed,
        "user": current_user(),
        "started": _iso(started),
        "ended": _iso(ended),
        "command": {"argv": [str(a) for a in argv], "cwd": base.as_posix()},
        "deterministic": bool(deterministic),
    }
    written = []
    for rel in output_rels:
        record = {"output": {"path": rel, **hash_path(base / rel, cache)}, **context}
        dest = record_path(base / rel)
        atomic_write_json(dest, record)
        written.append(dest)
    return written


def run_and_record(
    argv: Sequence[str],
    outputs: Sequence[PathLike],
    inputs: Sequence[PathLike] = (),
    config: PathLike | None = None,
    seed: int | None = None,
    deterministic: bool = False,
) -> int:
    """Run `argv` as a subprocess; on exit 0 record every output and return 0, else return its code.

    Inputs and config are checked before the command starts (a typo should not cost a training
    run). Without `config`, the first input named run_config.json / dataset_config.json is used.
    Old records of the outputs are removed first: they describe files the command is about to
    replace, and a failed command must leave no record behind. A signal death returns 128+sig,
    as a shell would.
    """
    if not argv:
        raise ValueError("command: nothing to run (give it after `--`)")
    if not outputs:
        raise ValueError("--outputs: at least one output is required")
    cwd = Path.cwd()
    _check_exist(inputs, cwd, "--inputs")
    if config is None:
        config = next((p for p in inputs if Path(p).name in RESOLVED_CONFIG_NAMES), None)
    _config_entry(config, cwd)
    for out in outputs:
        record_path(out).unlink(missing_ok=True)
    started = utc_now()
    try:
        rc = subprocess.run(list(argv)).returncode
    except FileNotFoundError as e:
        raise FileNotFoundError(f"command {argv[0]!r}: not found ({e.strerror})") from None
    ended = utc_now()
    if rc != 0:
        return 128 + (-rc) if rc < 0 else rc
    missing = [str(o) for o in outputs if not Path(o).exists()]
    if missing:
        raise FileNotFoundError(f"command succeeded but did not create --outputs {missing}")
    record_provenance(outputs, inputs, argv, started, ended, config, seed, deterministic=deterministic, cwd=cwd)
    return 0


def load_record(record_file: PathLike) -> dict[str, Any]:
    """Read a record; ValueError naming the file when it is not one (corrupt or foreign JSON)."""
    try:
        rec = read_json(record_file)
    except (OSError, ValueError) as e:
        raise ValueError(f"{str(record_file)!r}: unreadable provenance record ({e})") from None
    if not isinstance(rec, dict) or rec.get("schema") != SCHEMA:
        raise ValueError(f"{str(record_file)!r}: not a {SCHEMA} record")
    try:  # the fields every audit reads; anything else may be absent in a hand-made record
        ok = (isinstance(rec["output"]["path"], str) and isinstance(rec["output"]["sha256"], str)
              and all(isinstance(i["path"], str) and isinstance(i["sha256"], str) for i in rec["inputs"])
              and isinstance(rec["command"]["argv"], list) and isinstance(rec["command"]["cwd"], str)
              and isinstance(rec["job"]["outputs"], list) and isinstance(rec["hardware"], dict))
    except (KeyError, TypeError):
        ok = False
    if not ok:
        raise ValueError(f"{str(record_file)!r}: malformed {SCHEMA} record (output/inputs/command/job/hardware)")
    return rec


def record_mismatch(path: PathLike, cache: HashCache | None = None) -> str | None:
    """Why `path` does not match the record beside it (no record, an unreadable one, other bytes),
    as one line; None when it matches. Readers call this before trusting a checkpoint."""
    rec_file = record_path(path)
    if not rec_file.is_file():
        return f"no hash record {rec_file.name} beside it"
    try:
        want = load_record(rec_file)["output"]
    except ValueError as e:
        return str(e)
    got = hash_path(path, cache)
    if got["sha256"] != want["sha256"]:
        return (f"sha256 {got['sha256'][:12]} != {want['sha256'][:12]} recorded when it was written "
                f"({rec_file.name}; {got['files']} files, {got['bytes']} bytes vs {want.get('files')}, "
                f"{want.get('bytes')})")
    return None


__all__ = ["SCHEMA", "record_path", "record_mismatch", "output_of_record", "record_provenance", "run_and_record", "load_record",
           "stored_path", "utc_now"]
