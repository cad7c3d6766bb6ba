"""`pathmoe train --run-config run_config.json` (works under deepspeed/torchrun/srun or alone)."""

from __future__ import annotations

import argparse
import json
import os
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train (or resume) one run through DeepSpeed",
                              description="Train or resume the run described by a run_config.json.")
    p.add_argument("--run-config", required=True, help="the run spec written by `pathmoe config`")
    # The deepspeed launcher appends --local_rank=N; accept both spellings.
    p.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.local_rank is not None:
        os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    from pathmoe.train import NonFiniteLossError, train

    try:
        summary = train(args.run_config)
    except NonFiniteLossError as exc:
        print(f"pathmoe train: error: {exc}", file=sys.stderr)
        return 3
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary, indent=2, sort_keys=True))
    return 0
