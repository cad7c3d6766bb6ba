"""`pathmoe` command line: one sub-command per stage.

Each stage package owns its commands (`pathmoe/<stage>/commands.py`, a `register(subparsers)`
function); this module only wires them and adds the experiment-level commands (`config`, `plan`).
Stage commands take explicit files, never the experiment YAML, so they work on any checkpoint.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import TYPE_CHECKING

from pathmoe import __version__

if TYPE_CHECKING:
    from pathmoe.config import Experiment

# command name -> stage package owning it (imported only when that command runs: each pulls in
# torch, lm-eval, matplotlib, ... and a Snakemake job should not pay for all of them).
STAGES = {"data": "data", "train": "train", "bench": "train", "convert-checkpoint": "train", "eval": "eval", "analyze": "analysis", "report": "report", "audit": "audit"}
# Experiment-level commands defined here: they need no stage module (`config get` runs inside
# analysis jobs, `config validate` and `plan` before launching).
EXPERIMENT_COMMANDS = ("config", "plan")


def _cmd_config_validate(args: argparse.Namespace) -> int:
    from pathmoe.config import find_config, load_experiment

    exp = load_experiment(find_config(args.config))
    print(f"{exp.name}: OK ({len(exp.datasets)} datasets, {len(exp.runs)} runs) -> {exp.output_dir}")
    return 0


def _cmd_config_run(args: argparse.Namespace) -> int:
    from pathmoe.config import find_config, load_experiment

    exp = load_experiment(find_config(args.config))
    if args.run not in exp.runs:
        raise SystemExit(f"error: run {args.run!r} is not in {exp.name}; runs: {', '.join(exp.runs)}")
    print(json.dumps(exp.run_config(args.run), indent=2, sort_keys=True))
    return 0


def _cmd_config_get(args: argparse.Namespace) -> int:
    from pathmoe.io import read_json

    obj = read_json(args.file)
    if args.key not in obj:
        raise KeyError(f"{args.file} has no key {args.key!r}; keys: {', '.join(obj)}")
    print(obj[args.key])
    return 0


def plan_text(exp: Experiment, gpu_flops: float | None = None, mfu: float | None = None,
              gpu_mem_gib: float = 80.0) -> str:
    """The per-GPU memory and GPU-hour tables of every training run (`pathmoe plan` and
    `snakemake --config plan=1`); `gpu_flops` and `mfu` default to the config's `cost` section."""
    from pathmoe.cost import estimate_gpu_hours, format_plan, memory_plans
    from pathmoe.memory import format_memory

    gpu_flops = gpu_flops or exp.cost["gpu_flops"]
    mfu = mfu or exp.cost["mfu"]
    text = (format_memory(memory_plans(exp), gpu_mem_gib) + "\n\n"
            + format_plan(estimate_gpu_hours(exp, gpu_flops, mfu), gpu_flops, mfu))
    shared = [f"{run} -> {spec.trained_by}" for run, spec in exp.runs.items() if spec.trained_by]
    if shared:  # above the table, whose last line stays the total
        text = "runs sharing another run's training (identical spec, trained once): " + ", ".join(shared) + "\n" + text
    return text


def _cmd_plan(args: argparse.Namespace) -> int:
    from pathmoe.config import find_config, load_experiment

    print(plan_text(load_experiment(find_config(args.config)), args.gpu_flops, args.mfu, args.gpu_mem_gib))
    return 0


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or (with `command`) one that registers only the stage module `command`
    needs: its stage's, or none for an experiment-level command (EXPERIMENT_COMMANDS)."""
    parser = argparse.ArgumentParser(prog="pathmoe", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"pathmoe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    cfg = sub.add_parser("config", help="validate or inspect an experiment config")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    p = cfg_sub.add_parser("validate", help="validate a config (name in configs/ or a path)")
    p.add_argument("config", nargs="?", default="default")
    p.set_defaults(func=_cmd_config_validate)
    p = cfg_sub.add_parser("run", help="print the resolved spec of one run (its run_config.json)")
    p.add_argument("config")
    p.add_argument("run", help="run id, e.g. pathb4_s0")
    p.set_defaults(func=_cmd_config_run)
    p = cfg_sub.add_parser("get", help="print one top-level value of a JSON file (rules use it)")
    p.add_argument("file")
    p.add_argument("key")
    p.set_defaults(func=_cmd_config_get)

    p = sub.add_parser("plan", help="estimate per-GPU memory and GPU-hours of every training run of a config")
    p.add_argument("--config", default="default", help="config name in configs/ or a path")
    p.add_argument("--gpu-flops", type=float, default=None, help="peak FLOP/s of one GPU (default: config cost.gpu_flops)")
    p.add_argument("--mfu", type=float, default=None, help="assumed model FLOPs utilisation (default: config cost.mfu)")
    p.add_argument("--gpu-mem-gib", type=float, default=80.0, help="memory of one GPU for the fits column (default: 80)")
    p.set_defaults(func=_cmd_plan)

    for stage in dict.fromkeys(STAGES.values()):
        if command is not None and STAGES.get(command) != stage:
            continue
        try:
            module = importlib.import_module(f"pathmoe.{stage}.commands")
        except ModuleNotFoundError as exc:
            if exc.name != f"pathmoe.{stage}.commands":
                raise
            continue
        module.register(sub)
    return parser


def take_local_rank(argv: list[str]) -> list[str]:
    """`argv` without the `--local_rank=N` that DeepSpeed's launcher inserts before the command
    (`python -m pathmoe.cli --local_rank=0 train ...`); N becomes LOCAL_RANK unless that is set."""
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in ("--local_rank", "--local-rank"):
            if not eq:
                i += 1
                value = argv[i] if i < len(argv) else ""
            if not value.isdigit():
                raise SystemExit(f"pathmoe: error: {name} needs a non-negative integer, got {value!r}")
            os.environ.setdefault("LOCAL_RANK", value)
        else:
            out.append(arg)
        i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    argv = take_local_rank(sys.argv[1:] if argv is None else argv)
    from pathmoe.quiet import quiet_progress_bars, to_terminal

    if not to_terminal():  # a job's log file: no progress-bar lines from the libraries
        quiet_progress_bars()
    known = argv and (argv[0] in STAGES or argv[0] in EXPERIMENT_COMMANDS)
    parser = build_parser(argv[0] if known else None)
    args = parser.parse_args(argv)
    args.argv = list(argv)  # the command line as given, for records that state how they were made
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        # Bad input is a one-line message, not a traceback (PATHMOE_DEBUG=1 shows it).
        if os.environ.get("PATHMOE_DEBUG"):
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"pathmoe {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
