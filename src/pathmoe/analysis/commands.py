"""`pathmoe analyze ...`: traces | paths | consistency | entropy | specialization | top-paths | robustness | all."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _cmd_traces(args: argparse.Namespace) -> int:
    from .suite import make_traces

    traces = make_traces(args.out, args.shards, args.tokens, args.seq_len, checkpoint=args.checkpoint,
                         hf_model=args.hf_model, batch_size=args.batch_size, device=args.device)
    print(json.dumps({"out": args.out, "num_tokens": int(traces["experts"].shape[0]),
                      "shape": list(traces["experts"].shape)}))
    return 0


def _cmd_trace_analysis(args: argparse.Namespace) -> int:
    from pathmoe.io import atomic_write_json

    from .suite import analyze_traces
    from .traces import load_traces

    tokenizer = None
    if args.analysis == "specialization" and args.tokenizer is not None:
        from pathmoe.data import load_tokenizer

        tokenizer = load_tokenizer(args.tokenizer)
    record = analyze_traces(args.analysis, load_traces(args.traces), tokenizer=tokenizer,
                            num_paths=args.num_paths, top_n=args.n)
    atomic_write_json(args.out, record)
    print(json.dumps({"out": args.out, "num_tokens": record["num_tokens"]}))
    return 0


def _cmd_robustness(args: argparse.Namespace) -> int:
    from pathmoe.io import atomic_write_json

    from pathmoe.eval.checkpoint import resolve_device

    from .robustness import check_p_values, permutation_robustness
    from .suite import load_model, val_tokens

    check_p_values(args.p)  # before loading anything
    dev = resolve_device(args.device)
    record = permutation_robustness(load_model(args.checkpoint, dev), val_tokens(args.shards, args.tokens), args.p,
                                    args.seq_len, args.batch_size, dev, seed=args.seed, repeats=args.repeats)
    atomic_write_json(args.out, record)
    print(json.dumps({"out": args.out, "num_tokens": record["num_tokens"], "p": record["p"],
                      "degradation_pct": record["degradation_pct"]}))
    return 0


def _cmd_all(args: argparse.Namespace) -> int:
    from .suite import run_all

    timings = run_all(args.checkpoint, args.shards, args.out_dir, num_tokens=args.tokens, seq_len=args.seq_len,
                      p_values=tuple(args.p), batch_size=args.batch_size, device=args.device,
                      tokenizer_dir=args.tokenizer, repeats=args.repeats, seed=args.seed,
                      num_paths=args.num_paths, top_n=args.n)
    num_tokens = json.loads((Path(args.out_dir) / "paths.json").read_text())["num_tokens"]
    print(json.dumps({"out_dir": args.out_dir, "num_tokens": num_tokens, "seconds": timings}))
    return 0


def _model_args(p: argparse.ArgumentParser, checkpoint_required: bool = True) -> None:
    p.add_argument("--checkpoint", required=checkpoint_required, help="a pathmoe HF export dir (hf/step_<N>)")
    p.add_argument("--shards", required=True, help="shards dir holding index.json; its val split is analysed")
    p.add_argument("--tokens", type=int, default=20000, help="number of val tokens to analyse")
    p.add_argument("--seq-len", type=int, default=128, help="window length (non-overlapping windows)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="auto = cuda when available, else cpu; cuda without a GPU is an error")


def _robustness_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--p", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0],
                   help="permutation probabilities")
    p.add_argument("--repeats", type=int, default=1, help="seeds averaged per p")
    p.add_argument("--seed", type=int, default=0)


def register(subparsers) -> None:
    """Add `pathmoe analyze` and its sub-commands to the top-level parser."""
    an = subparsers.add_parser("analyze", help="routing traces and path analyses (Tables 3-4, Figs 4, 5, 7, 8)")
    sub = an.add_subparsers(dest="analyze_command", required=True)

    p = sub.add_parser("traces", help="collect routing traces of a checkpoint (or --hf-model) -> traces.npz")
    _model_args(p, checkpoint_required=False)
    p.add_argument("--hf-model", default=None, help="an HF MoE model name or dir instead of --checkpoint")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_traces)

    for name, what in [("paths", "Table 4 + coverage (Fig 4)"), ("consistency", "Fig 7"),
                       ("entropy", "Fig 8a"), ("specialization", "Fig 5"), ("top-paths", "Table 3 paths")]:
        p = sub.add_parser(name, help=f"{what} from a traces file")
        p.add_argument("--traces", required=True)
        p.add_argument("--out", required=True)
        p.add_argument("--tokenizer", default=None, help="tokenizer dir (specialization)")
        p.add_argument("--num-paths", type=int, default=20, help="frequent paths listed (specialization)")
        p.add_argument("--n", type=int, default=500, help="number of paths (top-paths)")
        p.set_defaults(func=_cmd_trace_analysis, analysis=name)

    p = sub.add_parser("robustness", help="perplexity under random expert permutation (Fig 8b)")
    _model_args(p)
    _robustness_args(p)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_robustness)

    p = sub.add_parser("all", help="every analysis of one checkpoint into --out-dir")
    _model_args(p)
    _robustness_args(p)
    p.add_argument("--tokenizer", default=None, help="tokenizer dir (default: the checkpoint's, else the data dir's)")
    p.add_argument("--num-paths", type=int, default=20, help="frequent paths listed in specialization.json")
    p.add_argument("--n", type=int, default=500, help="paths listed in top_paths.json")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=_cmd_all)
