"""`pathmoe eval ...`: run | tasks | collect | ppl | lm-eval (thin wrappers over the library functions)."""

from __future__ import annotations

import argparse
import json


def _cmd_run(args: argparse.Namespace) -> int:
    from pathmoe.eval.run import evaluate_run

    out = evaluate_run(args.run_config)
    print(out)
    print((out.parent / "selected.json").read_text().strip())
    return 0


def _cmd_tasks(args: argparse.Namespace) -> int:
    from pathmoe.eval.offline import build_offline_tasks

    out = build_offline_tasks(args.data_dir, args.out, seed=args.seed, n_examples=args.n_examples,
                              max_length=args.max_length)
    print(out)
    print((out / "fit.json").read_text().strip())
    return 0


def _cmd_collect(args: argparse.Namespace) -> int:
    from pathmoe.eval.records import collect_records

    print(collect_records(args.runs, args.out))
    return 0


def _cmd_ppl(args: argparse.Namespace) -> int:
    from pathmoe.eval.checkpoint import load_checkpoint
    from pathmoe.eval.perplexity import validation_perplexity

    model, _ = load_checkpoint(args.checkpoint, args.device, tokenizer_dir=args.tokenizer)
    seq_len = args.seq_len or int(model.config.max_seq_len)
    ppl = validation_perplexity(model, args.shards, seq_len, args.tokens, batch_size=args.batch_size)
    print(json.dumps({"checkpoint": args.checkpoint, "val_ppl": ppl, "seq_len": seq_len, "tokens": args.tokens}))
    return 0


def _cmd_lm_eval(args: argparse.Namespace) -> int:
    from pathmoe.eval.stock import run_lm_eval_cli

    return run_lm_eval_cli(args.lm_eval_args)


def register(subparsers) -> None:
    """Add `pathmoe eval` and its sub-commands to the top-level parser."""
    ev = subparsers.add_parser("eval", help="evaluate checkpoints (lm-eval tasks, perplexity, selection)")
    sub = ev.add_subparsers(dest="eval_command", required=True)

    p = sub.add_parser("run", help="evaluate every export of a run -> eval/records.csv + selected.json")
    p.add_argument("--run-config", required=True, help="the run's run_config.json")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("tasks", help="build the offline lm-eval tasks from <data-dir>/raw/val.jsonl")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--out", required=True, help="directory for the jsonl data + task YAMLs")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--n-examples", type=int, default=500)
    p.add_argument("--max-length", type=int, default=None,
                   help="the model's context in tokens: no example is longer (contexts cut from the left, "
                        "candidates whose answer does not fit skipped); default: no bound")
    p.set_defaults(func=_cmd_tasks)

    p = sub.add_parser("collect", help="concatenate runs' eval/records.csv into one table")
    p.add_argument("--runs", nargs="+", required=True, help="run directories")
    p.add_argument("--out", required=True, help="output csv, e.g. <out>/results/records.csv")
    p.set_defaults(func=_cmd_collect)

    p = sub.add_parser("ppl", help="validation perplexity of one checkpoint on held-out shards")
    p.add_argument("--checkpoint", required=True, help="an HF export directory (hf/step_<N>)")
    p.add_argument("--shards", required=True, help="shards directory with index.json")
    p.add_argument("--tokenizer", default=None, help="tokenizer dir if the export has none")
    p.add_argument("--seq-len", type=int, default=None, help="window length (default: the model's max_seq_len)")
    p.add_argument("--tokens", type=int, default=50000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.set_defaults(func=_cmd_ppl)

    p = sub.add_parser("lm-eval", help="stock lm-eval's CLI with the PathMoE model class registered: "
                                       "pathmoe eval lm-eval -- --model hf --model_args pretrained=<export> ...",
                       description="Runs lm-eval's own command line (`lm-eval ...`) in a process where the "
                                   "PathMoE classes are registered with transformers' Auto classes, so "
                                   "`--model hf --model_args pretrained=<run>/hf/step_<N>` loads an export. "
                                   "Everything after `--` goes to lm-eval unchanged.")
    p.add_argument("lm_eval_args", nargs=argparse.REMAINDER, metavar="-- LM_EVAL_ARGS",
                   help="lm-eval's arguments, e.g. -- --model hf --model_args pretrained=DIR --tasks arc_easy")
    p.set_defaults(func=_cmd_lm_eval)
