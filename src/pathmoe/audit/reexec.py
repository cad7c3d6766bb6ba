"""Re-execute deterministic jobs in a scratch directory and compare outputs byte for byte.

The scratch directory mirrors the job's working directory: every recorded relative input is
copied to the same relative path, output parent directories are created (as Snakemake does), and
the recorded argv runs there. Inputs outside the working directory (stored absolute) are read in
place. A job is refused (a warning, not a verdict) when re-running it could touch the originals:
an output outside the working directory, or an argv that names the original working directory. Jobs of the `pathmoe` stages named in `skip_stages` are not re-run
either (`verify --reexec-skip-stage data`: at paper scale the data stage downloads and tokenizes
the whole corpus).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Any

from tqdm import tqdm

from pathmoe.audit.hashing import HashCache, hash_path
from pathmoe.audit.verify import OK, REEXEC_MISMATCH, REEXEC_OK, ArtifactResult


def _refusal(rec: dict[str, Any]) -> str | None:
    cwd = rec["command"]["cwd"]
    if any(PurePosixPath(p).is_absolute() for p in rec["job"]["outputs"]):
        return "not re-executed: an output lies outside the job's working directory"
    if any(cwd in arg for arg in rec["command"]["argv"]):
        return "not re-executed: the command names its original working directory (would write there)"
    if not rec["command"]["argv"]:
        return "not re-executed: no command recorded"
    return None


def command_stage(argv: list[str]) -> str | None:
    """The `pathmoe` stage a recorded command runs (`srun pathmoe data tokenize ...` -> "data")."""
    for program, stage in zip(argv, argv[1:]):
        if PurePosixPath(program).name == "pathmoe":
            return stage
    return None


def _stage(rec: dict[str, Any], root: Path, scratch: Path) -> None:
    for entry in rec.get("inputs", []):
        if PurePosixPath(entry["path"]).is_absolute():
            continue
        src, dst = root / entry["path"], scratch / entry["path"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst)
    for out in rec["job"]["outputs"]:
        (scratch / out).parent.mkdir(parents=True, exist_ok=True)


def reexecute(rec: dict[str, Any], root: Path, cache: HashCache, timeout: float | None) -> dict[str, str | None]:
    """Run one recorded job in a scratch copy; map each job output -> new sha256 (None if absent).

    Raises RuntimeError with the tail of stderr when the command fails or times out.
    """
    scratch = Path(tempfile.mkdtemp(prefix=".pathmoe-reexec-"))
    try:
        _stage(rec, root, scratch)
        try:
            proc = subprocess.run(rec["command"]["argv"], cwd=scratch, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"re-execution timed out after {timeout} s") from None
        except OSError as e:
            raise RuntimeError(f"re-execution could not start: {e}") from None
        if proc.returncode != 0:
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            raise RuntimeError(f"re-execution exited {proc.returncode}: {tail}")
        return {out: hash_path(scratch / out, cache)["sha256"] if (scratch / out).exists() else None
                for out in rec["job"]["outputs"]}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def reexec_results(results: list[ArtifactResult], cache: HashCache, timeout: float | None,
                   skip_stages: frozenset[str] = frozenset()) -> None:
    """Upgrade ok deterministic artifacts in place to reexec-ok / reexec-mismatch (one run per job);
    jobs of the `pathmoe` stages in `skip_stages` stay ok with a warning."""
    jobs: dict[str, list[ArtifactResult]] = defaultdict(list)
    for res in results:
        if res.status != OK or res.record is None:
            continue
        if not res.record.get("deterministic"):
            res.warnings.append("not re-executed: recorded as non-deterministic")
            continue
        jobs[res.record["job"].get("id") or str(res.record_file)].append(res)
    for members in tqdm(jobs.values(), desc="reexec", unit="job", leave=False):
        first = members[0]
        reason = _refusal(first.record)
        stage = command_stage(first.record["command"]["argv"])
        if reason is None and stage in skip_stages:
            reason = f"not re-executed: stage {stage!r} skipped (--reexec-skip-stage)"
        if reason:
            for res in members:
                res.warnings.append(reason)
            continue
        try:
            new = reexecute(first.record, first.root, cache, timeout)
        except RuntimeError as e:
            for res in members:
                res.status = REEXEC_MISMATCH
                res.details.append(str(e))
            continue
        for res in members:
            rel = res.record["output"]["path"]
            want = res.record["output"]["sha256"]
            if new.get(rel) == want:
                res.status = REEXEC_OK
            else:
                res.status = REEXEC_MISMATCH
                got = "no output" if new.get(rel) is None else f"sha256 {new[rel][:12]}"
                res.details.append(f"re-executed {rel}: {got} != recorded {want[:12]}")


__all__ = ["command_stage", "reexecute", "reexec_results"]
