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
    p.add_argument("--restart", action="store_true",
                   help="discard the run directory's checkpoints, exports, metrics and markers and train "
                        "from step 0 (the way out when they are missing or inconsistent)")
    p.add_argument("--stop-margin-s", type=float, default=None, metavar="SECONDS",
                   help="under SLURM: checkpoint and stop (then requeue the job) when the job's time limit is "
                        "less than this many seconds away; SIGUSR1/SIGTERM stop it at any time")
    p.set_defaults(func=_run)

    c = subparsers.add_parser("convert-checkpoint", help="make a run's newest DeepSpeed checkpoint resumable on "
                              "another number of ranks (DeepSpeed universal checkpoint)",
                              description="Convert <run-dir>/ds_ckpt/step_<N> (the newest complete tag) into "
                                          "step_<N>_universal with deepspeed.checkpoint.ds_to_universal; the next "
                                          "`pathmoe train` on a different number of ranks resumes from it "
                                          "(ZeRO 1-2 runs; docs/training.md).")
    c.add_argument("--run-dir", required=True, help="the run directory (holds ds_ckpt/ and train_config.json)")
    c.add_argument("--workers", type=int, default=1, help="parallel extract/merge processes (default: 1)")
    c.set_defaults(func=_convert)

    b = subparsers.add_parser("bench", help="training throughput (tokens/s/GPU, MFU, peak memory) of configured runs",
                              description="Train each named run of a config for a few steps on synthetic tokens "
                                          "through the real training path and report tokens/s per GPU, MFU and "
                                          "peak memory, with the ratio of each run to the first.")
    b.add_argument("--config", default="paper-0.9b", help="config name in configs/ or a path")
    b.add_argument("--runs", nargs="+", default=["indep_s0", "pathb4_s0"], help="run ids (first = baseline)")
    b.add_argument("--steps", type=int, default=20)
    b.add_argument("--micro-batch-size", type=int, default=None, help="default: the run's own")
    b.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: the run's own")
    b.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="regional torch.compile of the layers (default: the run's own train.compile)")
    b.add_argument("--activation-checkpointing", action=argparse.BooleanOptionalAction, default=None,
                   help="recompute layers in backward (default: the run's own setting)")
    b.add_argument("--peak-tflops", type=float, default=None,
                   help="per-GPU peak for MFU (default: the config's cost.gpu_flops; H100 SXM bf16 dense: 989)")
    b.add_argument("--work-dir", default=None, help="scratch directory (default: a temporary one)")
    b.add_argument("--out", default=None, help="also write the Markdown record here")
    b.set_defaults(func=_bench)


def _run(args: argparse.Namespace) -> int:
    from pathmoe.train import NonFiniteLossError, train
    from pathmoe.train.preempt import EXIT_STOPPED, TrainingStopped, requeue_self

    try:
        summary = train(args.run_config, restart=args.restart, stop_margin_s=args.stop_margin_s)
    except NonFiniteLossError as exc:
        print(f"pathmoe train: error: {exc}", file=sys.stderr)
        return 3
    except TrainingStopped as exc:
        print(f"pathmoe train: {exc}", file=sys.stderr, flush=True)
        if exc.reason != "SIGTERM":  # SIGTERM: SLURM is already ending (or requeueing) the job
            requeue_self()
        return EXIT_STOPPED
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


def _convert(args: argparse.Namespace) -> int:
    from pathmoe.train.elastic import convert_checkpoint

    print(convert_checkpoint(args.run_dir, args.workers))
    return 0


def _bench(args: argparse.Namespace) -> int:
    import shlex
    import tempfile

    import torch

    from pathmoe.config import find_config, load_experiment
    from pathmoe.io import atomic_write_text
    from pathmoe.train.throughput import bench_throughput, format_markdown

    exp = load_experiment(find_config(args.config))
    peak = args.peak_tflops * 1e12 if args.peak_tflops else exp.cost["gpu_flops"]
    with tempfile.TemporaryDirectory(prefix="pathmoe-bench-") as tmp:
        overrides = {key: value for key, value in (("compile", args.compile),
                                                   ("activation_checkpointing", args.activation_checkpointing))
                     if value is not None}
        rows = bench_throughput(exp, args.runs, args.work_dir or tmp, args.steps, args.micro_batch_size,
                                args.device, peak, overrides)
    device = torch.cuda.get_device_name() if rows and rows[0]["device"] == "cuda" else "CPU"
    text = format_markdown(rows, "pathmoe " + shlex.join(args.argv), device, peak)
    print(text)
    if args.out:
        atomic_write_text(args.out, text)
    return 0
