"""`pathmoe audit record|verify|gather`: the CLI over provenance records.

Every handler returns an exit code; the registered callable raises SystemExit with it when it is
non-zero, so the code survives whatever the top-level `main` does with return values (Snakemake
relies on `record` propagating the wrapped command's code).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

from pathmoe.io import atomic_write_json, atomic_write_text


def _record(args: argparse.Namespace) -> int:
    from pathmoe.audit.provenance import run_and_record

    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    return run_and_record(cmd, args.outputs, args.inputs, args.config, args.seed, args.deterministic)


def _verify(args: argparse.Namespace) -> int:
    from pathmoe.audit.render import verify_markdown
    from pathmoe.audit.verify import summarize, verify_dir

    dirs = [Path(d) for d in args.dirs]
    base = dirs[0] if len(dirs) == 1 else Path(".")
    results = verify_dir(dirs, reexec=args.reexec, allow_missing_inputs=args.allow_missing_inputs,
                         reexec_timeout=args.reexec_timeout, reexec_skip_stages=args.reexec_skip_stage,
                         trust=args.trust)
    checks, paper_warnings = None, []
    if args.paper_tolerance is not None:
        # the paper comparison reads the report stage (pandas, scipy): imported only when asked for
        from pathmoe.audit.hashing import load_config
        from pathmoe.audit.paper import compare_tables

        reference = load_config(args.paper_reference) if args.paper_reference else None
        checks = []
        for d in dirs:
            found, warned = compare_tables(d, args.paper_tolerance, reference)
            checks, paper_warnings = checks + found, paper_warnings + warned
    title = " ".join(map(str, dirs))
    md = verify_markdown(base, results, checks, args.paper_tolerance, paper_warnings, title=title)
    if args.out:
        atomic_write_text(args.out, md)
    if args.json:
        atomic_write_json(args.json, {"dirs": [str(d) for d in dirs], "summary": summarize(results),
                                      "artifacts": [r.to_json(base) for r in results],
                                      "paper": None if checks is None else [asdict(c) for c in checks]})
    failed = sum(r.failed for r in results) + sum(not c.within for c in checks or [])
    counts = ", ".join(f"{n} {s}" for s, n in summarize(results).items()) or "no records"
    paper = "" if checks is None else f"; paper: {sum(c.within for c in checks)}/{len(checks)} cells within tolerance"
    print(f"audit verify {title}: {counts}{paper} -> {args.out}" if args.out else md)
    return 1 if failed else 0


def _gather(args: argparse.Namespace) -> int:
    from pathmoe.audit.gather import gather
    from pathmoe.audit.render import gather_markdown

    report = gather(args.dirs, reexec=args.reexec, allow_missing_inputs=args.allow_missing_inputs, trust=args.trust)
    atomic_write_text(args.out, gather_markdown(report))
    if args.json:
        atomic_write_json(args.json, report)
    n_bad = sum(g["verdict"] == "non-reproducible" for g in report["consistency"])
    print(f"audit gather: {len(args.dirs)} directories, {n_bad} non-reproducible computations, "
          f"{'FAILED' if report['failed'] else 'clean'} -> {args.out}")
    return 1 if report["failed"] else 0


def _guarded(name: str, handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            code = handler(args)
        except (ValueError, FileNotFoundError) as e:
            print(f"pathmoe audit {name}: error: {e}", file=sys.stderr)
            code = 2
        if code:
            raise SystemExit(code)
        return 0

    return run


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `audit` with its record / verify / gather subcommands to the `pathmoe` parser."""
    audit = subparsers.add_parser("audit", help="provenance records, verification and cluster audits")
    sub = audit.add_subparsers(dest="audit_command", required=True)

    rec = sub.add_parser("record", help="run a command and record provenance for its outputs",
                         description="pathmoe audit record --inputs A B --outputs X Y [--config F] [--seed N] "
                                     "[--deterministic] -- CMD ARGS...")
    rec.add_argument("--inputs", nargs="*", default=[], metavar="PATH", help="files/directories the command reads")
    rec.add_argument("--outputs", nargs="+", required=True, metavar="PATH", help="files/directories it writes")
    rec.add_argument("--config", default=None, help="resolved config (JSON/YAML) the command used")
    rec.add_argument("--seed", type=int, default=None, help="seed (default: the config's top-level 'seed')")
    rec.add_argument("--deterministic", action="store_true",
                     help="promise byte-identical outputs on re-execution (checked by verify --reexec)")
    rec.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    rec.set_defaults(func=_guarded("record", _record))

    ver = sub.add_parser("verify", help="check every *.prov.json under DIR... against the files on disk")
    ver.add_argument("dirs", nargs="+", metavar="DIR",
                     help="directories to walk for *.prov.json (and tables/*.json), e.g. results/x reports")
    ver.add_argument("--reexec", action="store_true",
                     help="re-run deterministic jobs (allow-listed pathmoe stage commands only) in a scratch dir")
    ver.add_argument("--trust", action="store_true",
                     help="with --reexec: also re-run jobs whose record or inputs belong to another user")
    ver.add_argument("--reexec-timeout", type=float, default=3600.0, help="seconds per re-executed job")
    ver.add_argument("--reexec-skip-stage", action="append", default=[], metavar="STAGE",
                     help="do not re-execute jobs of this pathmoe stage (repeatable), e.g. data at paper scale")
    ver.add_argument("--allow-missing-inputs", action="store_true",
                     help="a deleted input is a warning, not stale-input (e.g. Snakemake temp() files)")
    ver.add_argument("--paper-tolerance", type=float, default=None, metavar="X",
                     help="compare reports/tables/*.json with the paper: X pp for accuracies, X %% relative otherwise")
    ver.add_argument("--paper-reference", default=None,
                     help="paper numbers for tables without a 'paper' field (default: configs/paper_reference.yaml)")
    ver.add_argument("--out", default=None, help="markdown report (default: print it)")
    ver.add_argument("--json", default=None, help="machine-readable report")
    ver.set_defaults(func=_guarded("verify", _verify))

    gat = sub.add_parser("gather", help="audit many run directories (users, hosts) together")
    gat.add_argument("dirs", nargs="+", help="run directories")
    gat.add_argument("--out", required=True, help="markdown report")
    gat.add_argument("--json", default=None, help="machine-readable report")
    gat.add_argument("--reexec", action="store_true", help="also re-run deterministic jobs (as for verify)")
    gat.add_argument("--trust", action="store_true",
                     help="with --reexec: also re-run jobs of directories that belong to other users")
    gat.add_argument("--allow-missing-inputs", action="store_true", help="as for verify")
    gat.set_defaults(func=_guarded("gather", _gather))


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry (`python -m pathmoe.audit.commands audit ...`), also used by the tests."""
    parser = argparse.ArgumentParser(prog="pathmoe")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SystemExit as e:
        return int(e.code or 0)


if __name__ == "__main__":
    sys.exit(main())
