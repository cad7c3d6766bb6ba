"""Re-execute deterministic jobs in a scratch directory and compare outputs byte for byte.

A recorded argv is never executed. Re-execution runs only the deterministic `pathmoe` stage
commands of `REEXEC_COMMANDS`: the recorded argv must be `pathmoe <stage> <command> ...` for an
allow-listed pair, it is parsed by pathmoe's own argument parser for that command (so every value
is typed: a path, an integer, one of the listed choices), and the command line is rebuilt from the
parsed values and run with the auditor's own Python as `python -c <pathmoe.cli.main> <stage> ...`,
never through a shell and never through whatever `pathmoe` lies first on PATH. A record that
names anything else is `refused` (a failing verdict: such a record was not written by the pipeline).

The scratch directory mirrors the job's working directory: every recorded relative input is
copied to the same relative path and output parent directories are created (as Snakemake does).
Every path option must stay inside it (relative, no `..`), except read-only options naming a
recorded absolute input, which are read in place. A job whose outputs or path options lie outside
the working directory is not re-run (a warning: it happens legitimately with absolute output
directories, and re-running it would write over the originals). Jobs of the `pathmoe` stages in
`skip_stages` are not re-run either (`verify --reexec-skip-stage data`: at paper scale the data
stage downloads and tokenizes the whole corpus).

Re-execution runs our code with the caller's privileges on files from the audited directory, so a
job is only re-run when the caller owns its record and every input; otherwise it is `refused`
unless the caller passes `--trust` (`trust=True`).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Any

from tqdm import tqdm

from pathmoe.audit.hashing import HashCache, hash_path
from pathmoe.audit.verify import OK, REEXEC_MISMATCH, REEXEC_OK, REFUSED, ArtifactResult

READ, WRITE = "read", "write"
_TRACE_FILES = {"traces": READ, "tokenizer": READ, "out": WRITE}
# (stage, command) -> {argparse dest of every option naming a file or directory: read | write}.
# Exactly the commands the rules record as deterministic; nothing else is ever re-executed.
REEXEC_COMMANDS: dict[tuple[str, str], dict[str, str]] = {
    ("data", "fetch"): {"dataset_config": READ, "revision_lock": READ, "out": WRITE},
    ("data", "tokenizer"): {"dataset_config": READ, "revision_lock": READ, "out": WRITE},
    ("data", "tokenize"): {"dataset_config": READ, "out": WRITE},
    **{("analyze", kind): _TRACE_FILES for kind in ("paths", "consistency", "entropy", "specialization", "top-paths")},
    ("eval", "collect"): {"runs": READ, "out": WRITE},
    ("report", "table"): {"spec": READ, "records": READ, "runs_dir": READ, "reference": READ, "out_dir": WRITE},
    ("report", "headlines"): {"spec": READ, "records": READ, "runs_dir": READ, "reference": READ, "out_dir": WRITE},
    ("report", "stats"): {"spec": READ, "records": READ, "runs_dir": READ, "out_dir": WRITE},
    ("report", "document"): {"spec": READ, "out_dir": WRITE},
}
# The interpreter runs pathmoe's CLI without the scratch directory (the job's cwd, which holds
# copied inputs) on sys.path, so no copied file can shadow a module.
_BOOT = ("import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; "
         "from pathmoe.cli import main; sys.exit(main(sys.argv[1:]))")


class Refused(Exception):
    """A recorded job that must not be re-executed; the message says why (one line)."""


def command_stage(argv: list[str]) -> str | None:
    """The `pathmoe` stage a recorded command runs (`srun pathmoe data tokenize ...` -> "data")."""
    for program, stage in zip(argv, argv[1:]):
        if PurePosixPath(program).name == "pathmoe":
            return stage
    return None


def current_uid() -> int:
    return os.getuid()


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


@functools.lru_cache(maxsize=None)
def _stage_parser(stage: str) -> argparse.ArgumentParser:
    from pathmoe.cli import build_parser

    return build_parser(stage)


def _subparser(parser: argparse.ArgumentParser, names: list[str]) -> argparse.ArgumentParser:
    for name in names:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def _parse(argv: list[str]) -> tuple[str, str, argparse.Namespace, argparse.ArgumentParser]:
    """(stage, command, parsed args, the command's parser) of an allow-listed recorded argv."""
    shown = " ".join(argv)[:120]
    if not argv or PurePosixPath(argv[0]).name != "pathmoe" or len(argv) < 3 \
            or (argv[1], argv[2]) not in REEXEC_COMMANDS:
        raise Refused(f"refused: the recorded command is not an allow-listed deterministic pathmoe stage "
                      f"command ({shown!r}); nothing was run")
    stage, command = argv[1], argv[2]
    parser = _stage_parser(stage)
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            args = parser.parse_args(argv[1:])
    except SystemExit:
        raise Refused(f"refused: the recorded command does not parse as `pathmoe {stage} {command}` "
                      f"({shown!r}); nothing was run") from None
    return stage, command, args, _subparser(parser, [stage, command])


def _inside(path: str) -> bool:
    p = PurePosixPath(path)
    return not p.is_absolute() and ".." not in p.parts


def rebuild_command(rec: dict[str, Any]) -> list[str]:
    """The argv re-execution runs for a record, rebuilt from its parsed, typed values.

    Raises Refused for a command outside REEXEC_COMMANDS, and ValueError (a warning: the job is
    legitimate but cannot be sandboxed) for a path option that leaves the working directory.
    """
    stage, command, args, sub = _parse([str(a) for a in rec["command"]["argv"]])
    files = REEXEC_COMMANDS[stage, command]
    absolute_inputs = {i["path"] for i in rec.get("inputs", []) if PurePosixPath(i["path"]).is_absolute()}
    argv = [sys.executable, "-c", _BOOT, stage, command]
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction) or action.dest == argparse.SUPPRESS:
            continue
        value = getattr(args, action.dest, None)
        if value is None or value is False or value == []:
            continue
        values = [str(v) for v in value] if isinstance(value, list) else [str(value)]
        kind = files.get(action.dest)
        for v in values if kind else ():
            if not (_inside(v) or (kind == READ and v in absolute_inputs)):
                raise ValueError(f"not re-executed: option {action.dest!r}={v!r} lies outside the job's "
                                 "working directory (re-running would touch the originals)")
        if not action.option_strings:
            argv += values
        elif value is True:
            argv.append(max(action.option_strings, key=len))
        else:
            argv += [max(action.option_strings, key=len), *values]
    return argv


def _check_ownership(rec: dict[str, Any], record_file: Path, root: Path) -> None:
    """Refused unless the caller owns the record and every input it would copy or read."""
    me = current_uid()
    paths = [record_file] + [root / i["path"] if not PurePosixPath(i["path"]).is_absolute() else Path(i["path"])
                             for i in rec.get("inputs", [])]
    for path in paths:
        found = [path] + ([Path(d) / n for d, _, ns in os.walk(path) for n in ns] if path.is_dir() else [])
        for p in found:
            try:
                uid = p.lstat().st_uid
            except OSError:
                continue
            if uid != me:
                raise Refused(f"refused: {p} belongs to {_owner(uid)}, not to you; re-executing runs its "
                              "job with your privileges: pass --trust to re-execute jobs from directories "
                              "you do not own")


def _refusal(rec: dict[str, Any]) -> str | None:
    if any(PurePosixPath(p).is_absolute() for p in rec["job"]["outputs"]):
        return "not re-executed: an output lies outside the job's working directory"
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


def _environment() -> dict[str, str]:
    """The auditor's environment, with relative PYTHONPATH entries made absolute (the job runs
    in the scratch directory, where they would point at copied inputs)."""
    env = dict(os.environ)
    if env.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) for p in env["PYTHONPATH"].split(os.pathsep) if p)
    return env


def reexecute(rec: dict[str, Any], root: Path, cache: HashCache, timeout: float | None,
              argv: list[str] | None = None) -> dict[str, str | None]:
    """Run one recorded job in a scratch copy; map each job output -> new sha256 (None if absent).

    `argv` is the rebuilt command (default: `rebuild_command(rec)`). Raises RuntimeError with the
    tail of stderr when the command fails or times out.
    """
    argv = argv if argv is not None else rebuild_command(rec)
    scratch = Path(tempfile.mkdtemp(prefix=".pathmoe-reexec-"))
    try:
        _stage(rec, root, scratch)
        try:
            proc = subprocess.run(argv, cwd=scratch, capture_output=True, text=True, timeout=timeout,
                                  env=_environment())
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


def _plan(first: ArtifactResult, skip_stages: frozenset[str], trust: bool) -> list[str]:
    """The argv to re-run `first`'s job; Refused, or ValueError (a warning), when it must not run."""
    rec = first.record
    stage, _, _, _ = _parse([str(a) for a in rec["command"]["argv"]])  # a foreign command is refused first
    if stage in skip_stages:
        raise ValueError(f"not re-executed: stage {stage!r} skipped (--reexec-skip-stage)")
    reason = _refusal(rec)
    if reason:
        raise ValueError(reason)
    argv = rebuild_command(rec)
    if not trust:
        _check_ownership(rec, first.record_file, first.root)
    return argv


def reexec_results(results: list[ArtifactResult], cache: HashCache, timeout: float | None,
                   skip_stages: frozenset[str] = frozenset(), trust: bool = False) -> None:
    """Upgrade ok deterministic artifacts in place to reexec-ok / reexec-mismatch (one run per job),
    or to refused; jobs that cannot be sandboxed, or of the `pathmoe` stages in `skip_stages`, stay
    ok with a warning."""
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
        try:
            argv = _plan(first, skip_stages, trust)
        except Refused as e:
            for res in members:
                res.status = REFUSED
                res.details.append(str(e))
            continue
        except ValueError as e:
            for res in members:
                res.warnings.append(str(e))
            continue
        try:
            new = reexecute(first.record, first.root, cache, timeout, argv)
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


__all__ = ["REEXEC_COMMANDS", "Refused", "command_stage", "rebuild_command", "reexecute", "reexec_results"]
