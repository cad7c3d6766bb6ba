"""`train(run_config)`: the DeepSpeed training loop, with exact resume and the NaN guard.

One code path everywhere (CPU/gloo/fp32 in CI, CUDA/nccl/bf16 on clusters, 1..N processes): the
model always runs inside `deepspeed.initialize`'s engine, so what CI tests is what clusters run.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from pathmoe.io import atomic_write_json, read_json
from pathmoe.train.checkpoint import (ResumeCheckpoints, export_hf, existing_exports, prune_exports,
                                      reset_if_state_changed, rng_state, set_rng_state, state_change)
from pathmoe.train.distenv import cuda_index, init_distributed, setup_dist_env
from pathmoe.train.integrity import CheckpointRecorder, check_training_state, discard_training_state
from pathmoe.train.dsconfig import build_ds_config
from pathmoe.train.elastic import resume_plan
from pathmoe.train.measure import Throughput, peak_mem_gib
from pathmoe.train.metrics import MetricsLog, expert_load
from pathmoe.train.optim import build_optimizer
from pathmoe.train.preempt import StopRequest, TrainingStopped
from pathmoe.train.runlock import hold_run_lock, release_run_lock
from pathmoe.train.runspec import load_run_config, source_step
from pathmoe.train.sampler import sample_windows
from pathmoe.train.schedule import lr_factor
from pathmoe.train.spec import TrainSpec, parse_train_spec
from pathmoe.train.trackers import Trackers

THROUGHPUT_WARMUP = 2  # steps excluded from tokens/s (allocator, JIT, first-touch)


class NonFiniteLossError(FloatingPointError):
    """Training hit a NaN/inf loss or gradient norm; the last good checkpoint is left intact."""


def _device(spec: TrainSpec) -> torch.device:
    if spec.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device='cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    if spec.device == "cpu" or not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
        return torch.device("cpu")
    return torch.device("cuda", cuda_index(device_count=torch.cuda.device_count()))


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _build_model(rc: dict[str, Any], vocab_size: int) -> torch.nn.Module:
    from pathmoe.model import PathMoEConfig, PathMoEForCausalLM
    from pathmoe.model_rules import MODEL_DEFAULTS, check_model_config

    kwargs = dict(rc["model"])
    # PathMoEConfig keeps unknown kwargs as attributes (from_pretrained passes HF extras), so a
    # typo in a run spec given straight to `pathmoe train` would silently train the default.
    check_model_config({**MODEL_DEFAULTS, **kwargs, "vocab_size": kwargs.get("vocab_size") or vocab_size})
    if kwargs.get("vocab_size") is None:
        kwargs["vocab_size"] = vocab_size
    elif kwargs["vocab_size"] < vocab_size:
        raise ValueError(f"model.vocab_size={kwargs['vocab_size']} is smaller than the tokenizer's "
                         f"vocab_size={vocab_size} (from the shard index); use null or >= {vocab_size}")
    return PathMoEForCausalLM(PathMoEConfig(**kwargs))


def _check_layout(model: dict[str, Any], spec: TrainSpec, world: int) -> None:
    """One-line errors for a parallel layout DeepSpeed would reject with an assertion deep inside."""
    if model.get("dispatch") != "deepspeed":
        return
    ep = int(model.get("expert_parallel_size", 1))
    if world % ep:
        raise ValueError(f"model.expert_parallel_size={ep} must divide the number of ranks ({world}); launch a "
                         f"multiple of {ep} processes")
    if spec.zero_stage > 2:
        raise ValueError(f"train.zero_stage={spec.zero_stage} with model.dispatch='deepspeed': DeepSpeed's MoE "
                         "layers support ZeRO stages 0-2")


def _all_mean(values: list[float], device: torch.device) -> list[float]:
    """Mean of each value over ranks (one small all-reduce; a no-op with one process)."""
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t)
        t /= dist.get_world_size()
    return t.tolist()


def _grad_norm_fp32(module: torch.nn.Module) -> float:
    """Global L2 grad norm at the accumulation boundary (ZeRO-0 fp32, where DeepSpeed keeps none).

    With expert parallelism each rank holds only its experts' gradients: their squared norm is
    summed over the expert-parallel group (every rank calls this), the rest is replicated.
    """
    from pathmoe.model.deepspeed_moe import expert_parallel_group

    sq = torch.zeros((), dtype=torch.float64)
    for p in module.parameters():
        if p.grad is not None and getattr(p, "allreduce", True):
            sq += p.grad.detach().double().pow(2).sum().cpu()
    groups: dict[Any, list[torch.nn.Module]] = {}
    for m in module.modules():
        if getattr(m, "dispatch", None) == "deepspeed" and hasattr(m, "ds"):
            groups.setdefault(expert_parallel_group(m)[0], []).append(m)
    for group, ffns in groups.items():
        local = sum((p.grad.detach().double().pow(2).sum() for f in ffns for p in f.experts.parameters()
                     if p.grad is not None), torch.zeros((), dtype=torch.float64, device=ffns[0].experts.w_up.device))
        if group is not None:
            torch.distributed.all_reduce(local, group=group)
        sq += local.cpu()
    return math.sqrt(float(sq))


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of logits [B, T, V] against the next tokens [B, T] (fp32 softmax).

    The window holds seq_len + 1 tokens: the model reads the first seq_len and every position is
    scored against the token after it, so each sequence trains exactly seq_len predictions with
    an input of exactly seq_len (the model's own `labels=` path would score only seq_len - 1).
    """
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))


def train(run_config: dict[str, Any] | str | os.PathLike, restart: bool = False,
          stop_margin_s: float | None = None) -> dict[str, Any]:
    """Train (or resume) one run; return the summary also written to run_dir/train_summary.json.

    SIGUSR1/SIGTERM, or (with `stop_margin_s`, under SLURM) the job's time limit less than
    `stop_margin_s` seconds away, stop it at the next step boundary after a checkpoint
    (TrainingStopped, pathmoe.train.preempt). Rank 0 holds <run_dir>/train.lock while training
    (pathmoe.train.runlock): a second trainer on the same run directory fails at once.

    `restart` discards the run directory's training state (checkpoints, exports, metrics, markers,
    summary) and trains from step 0; without it, checkpoints whose markers are missing or
    inconsistent stop the run (pathmoe.train.integrity.check_training_state).
    """
    t_start = time.perf_counter()
    rc = load_run_config(run_config)
    spec = parse_train_spec(rc["train"])
    run_dir, data_dir = Path(rc["run_dir"]), Path(rc["data_dir"])
    summary_path = run_dir / "train_summary.json"
    argv = (["pathmoe", "train", "--run-config", str(run_config)] if isinstance(run_config, (str, os.PathLike))
            else ["pathmoe.train.train", f"<run spec of {rc.get('run', run_dir.name)}>"])
    recorder = CheckpointRecorder(run_dir, data_dir, argv)
    from pathmoe.data import dataset_identity

    from pathmoe.train.restrict import init_identity

    data_id = init_identity(dataset_identity(data_dir), rc.get("init_from"))  # data (+ init checkpoint bytes)
    # Read-only and on every rank, before any process group: a refusal (checkpoints with missing or
    # inconsistent markers, train.on_data_change: refuse) stops all ranks alike instead of leaving
    # the others waiting at a barrier. `restart` discards the state instead (rank 0, below).
    if not restart:
        check_training_state(run_dir)
        changed = state_change(run_dir, rc, data_id)
        if summary_path.exists() and changed is None:
            return read_json(summary_path)  # finished run on the same spec and data: training is idempotent

    world = setup_dist_env()["world_size"]  # maps srun's SLURM_* so LOCAL_RANK is known below
    _check_layout(rc["model"], spec, world)
    if os.environ["RANK"] == "0":
        hold_run_lock(run_dir)  # before anything is written; released when training ends
    device = _device(spec)
    accum = spec.grad_accum(world)  # bad batch sizes fail before any process group exists
    rank = init_distributed("nccl" if device.type == "cuda" else "gloo")["rank"]
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.cuda.reset_peak_memory_stats(device)  # the peak reported is this run's
    ds_config = build_ds_config(spec, world)
    if rank == 0:
        if restart:
            gone = discard_training_state(run_dir)
            print(f"{run_dir}: --restart discarded {', '.join(gone) or 'nothing'}; training from step 0", flush=True)
        reset_if_state_changed(run_dir, rc, data_id)
        if not (run_dir / "train_config.json").exists():  # a run started outside the DAG
            atomic_write_json(run_dir / "train_config.json", rc)
    _barrier()

    ckpts = ResumeCheckpoints(run_dir / "ds_ckpt", rank, recorder)
    tag = ckpts.latest()
    if tag is not None:  # on another number of ranks: as it is, as a universal checkpoint, or a one-line refusal
        tag, universal = resume_plan(run_dir, tag, ckpts.world_sizes().get(tag), world, spec.zero_stage,
                                     rc["model"].get("dispatch", "dropless"))
        if universal:
            ds_config["checkpoint"] = {"load_universal": True}
    engine, train_tokens, hook = _build_engine(rc, spec, ds_config, device, rank)
    seed = int(rc.get("seed", 0))
    # A continuation (Table 3) draws the windows the source run would have drawn next.
    data_offset = source_step(rc["init_from"]) if rc.get("init_from") else 0

    start = 0
    if tag is not None:
        client = ckpts.load(engine, tag)
        start = int(client["step"])
        set_rng_state(client["rng"][rank] if rank < len(client["rng"]) else client["rng"][0])
    log = MetricsLog(run_dir / "metrics.jsonl", enabled=rank == 0)
    log.truncate_after(start)
    trackers = Trackers(spec.trackers, run_dir, rc, start, rank)

    n_experts = int(engine.module.config.n_experts)
    tokens_per_step = spec.micro_batch_size * accum * spec.seq_len
    meter = Throughput(tokens_per_step, min(THROUGHPUT_WARMUP, max(0, spec.steps - start - 1)), device)
    tty = sys.stderr.isatty()
    bar = tqdm(total=spec.steps, initial=start, disable=rank != 0 or not tty, desc=f"train {rc.get('run', '')}")
    last_log_t, last_log_step = time.perf_counter(), start
    last: dict[str, Any] = {}
    stopper, stop = StopRequest(stop_margin_s).install(), False
    for step in range(start, spec.steps):
        n = step + 1  # number of optimizer steps done after this one
        log_step = n % spec.log_every == 0 or n == 1 or n == spec.steps
        lm_mean, aux_mean, grad_norm, lr, load = _train_step(
            engine, spec, train_tokens, seed, step, data_offset + step, accum, rank, device, hook, log_step,
            n_experts, lambda: ckpts.latest() or "none")
        meter.step_done()
        bar.update(1)
        if log_step:
            now = time.perf_counter()
            rec = {"step": n, "loss": lm_mean + aux_mean, "lm_loss": lm_mean, "aux_loss": aux_mean, "lr": lr,
                   "grad_norm": grad_norm, "peak_mem_gib": round(peak_mem_gib(device), 4),
                   "tokens_per_s": round((n - last_log_step) * tokens_per_step / max(now - last_log_t, 1e-9), 2),
                   **(load or {})}
            last_log_t, last_log_step = now, n
            log.write(rec)
            last = rec
            trackers.log(rec)
            if rank == 0 and not tty:
                print(f"step {n}/{spec.steps} loss {rec['loss']:.4f} lr {lr:.3g} "
                      f"{rec['tokens_per_s']:.0f} tok/s", flush=True)
        if n % spec.export_every == 0 or n in spec.export_steps or n == spec.steps:
            _export(engine, spec, run_dir, data_dir, n, rank, recorder)
        stop = n < spec.steps and stopper.poll(device)
        if n < spec.steps and (n % spec.ckpt_every == 0 or stop):
            states: list[Any] = [None] * world
            _gather(states, rng_state())
            ckpts.save(engine, n, {"step": n, "rng": states})
        if stop:
            break
    stopper.uninstall()
    bar.close()
    log.close()
    trackers.close()
    if stop:
        raise TrainingStopped(n, stopper.reason or "stop requested")

    per_gpu = meter.tokens_per_s()
    summary = {"steps": spec.steps, "tokens_per_s": per_gpu * world, "tokens_per_s_per_gpu": per_gpu,
               "peak_mem_gib": _all_mean([peak_mem_gib(device)], device)[0],
               "final_loss": last.get("loss"), "world_size": world,
               "exports": [f"hf/step_{s}" for s in existing_exports(run_dir / "hf")],
               "wall_s": time.perf_counter() - t_start, "device": device.type, "resumed_from": start,
               "grad_accum": accum, "precision": spec.precision, "zero_stage": spec.zero_stage}
    if rank == 0:
        atomic_write_json(summary_path, summary)
    _barrier()
    release_run_lock(run_dir)
    return summary


def _build_engine(rc: dict[str, Any], spec: TrainSpec, ds_config: dict[str, Any], device: torch.device,
                  rank: int) -> tuple[Any, Any, Any]:
    """Data, seeded model (+ init_from weights and restriction hook), optimizer, schedule, engine."""
    import deepspeed

    from pathmoe.data import TokenShards

    # Sizes are checked; the sha256 of every shard was verified when `tokenize` wrote or reused it,
    # and re-hashing a ~200 GB split on every rank at every (re)start would delay step 1 by minutes.
    train_tokens = TokenShards(Path(rc["data_dir"]) / "shards", "train", verify=False)
    if spec.threads is not None:
        torch.set_num_threads(spec.threads)
    _seed_all(int(rc.get("seed", 0)))  # the model's initial weights are a function of the seed
    model = _build_model(rc, int(train_tokens.vocab_size))
    hook = None
    if rc.get("init_from"):
        from pathmoe.train.restrict import init_restricted

        hook = init_restricted(model, rc, device, rank)
    model.set_activation_checkpointing(spec.activation_checkpointing)
    if spec.compile:
        model.compile_layers()  # regional: one compile for all layers, routing stays eager
    optimizer = build_optimizer(model, spec)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, spec.steps, spec.warmup_steps, spec.min_lr_ratio))
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler,
                                           config=ds_config)
    return engine, train_tokens, hook


def _train_step(engine: Any, spec: TrainSpec, tokens: Any, seed: int, step: int, data_step: int, accum: int,
                rank: int, device: torch.device, hook: Any, log_step: bool, n_experts: int,
                last_good: Any) -> tuple[float, float, float | None, float, dict[str, list] | None]:
    """One optimizer step over `accum` micro-batches -> (lm_loss, aux_loss, grad_norm, lr, expert load).

    `step` is this run's 0-based optimizer step; `data_step` the position in the data stream
    (`step` plus the source step for a continuation).

    The loss check sits between the last backward and the update, so a NaN/inf step never
    changes the weights; losses are synced to the host once per step, not per micro-batch.
    """
    import torch.distributed as dist

    n = step + 1
    world = dist.get_world_size() if dist.is_initialized() else 1
    lm_parts, aux_parts, load, manual_norm = [], [], None, None
    lr = float(engine.get_lr()[0])  # the lr this update uses
    for micro in range(accum):
        # the step's global micro-batch index (micro-major): the same windows for any number of ranks
        batch_index = micro * world + rank
        window = sample_windows(tokens, spec.micro_batch_size, spec.seq_len + 1, seed, data_step, batch_index, 0)
        window = window.to(device)  # [B, seq_len + 1]
        routing = log_step and micro == 0
        out = engine(input_ids=window[:, :-1], output_routing=routing, routing_hook=hook)
        if routing:
            load = expert_load(out.routing, n_experts)
        lm_loss = next_token_loss(out.logits, window[:, 1:])
        engine.backward(lm_loss + out.aux_loss)
        lm_parts.append(lm_loss.detach().float())
        aux_parts.append(out.aux_loss.detach().float())
        if micro == accum - 1:
            local = [float(torch.stack(lm_parts).mean()), float(torch.stack(aux_parts).mean())]
            lm_mean, aux_mean = _all_mean(local, device)
            if not math.isfinite(lm_mean + aux_mean):
                raise NonFiniteLossError(f"non-finite loss {lm_mean + aux_mean} at step {n}; training stopped "
                                         f"before the update, last good checkpoint: {last_good()}")
            if spec.zero_stage == 0 and spec.precision == "fp32":
                manual_norm = _grad_norm_fp32(engine.module)
        engine.step()
    grad_norm = engine.get_global_grad_norm()
    grad_norm = float(grad_norm) if grad_norm is not None else manual_norm
    if grad_norm is not None and not math.isfinite(grad_norm):
        raise NonFiniteLossError(f"non-finite gradient norm {grad_norm} at step {n}; training stopped, "
                                 f"last good checkpoint: {last_good()}")
    return lm_mean, aux_mean, grad_norm, lr, load


def _gather(out: list[Any], obj: Any) -> None:
    import torch.distributed as dist

    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_gather_object(out, obj)
    else:
        out[0] = obj


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


def _export(engine: Any, spec: TrainSpec, run_dir: Path, data_dir: Path, step: int, rank: int,
            recorder: CheckpointRecorder) -> None:
    """HF export of the current weights and its hash record (rank 0 writes; ZeRO-3 gathers the shards
    first; the deepspeed dispatch gathers every rank's experts into the dropless layout)."""
    state_dict = engine._zero3_consolidated_16bit_state_dict() if spec.zero_stage == 3 else None
    if engine.module.config.dispatch == "deepspeed":
        from pathmoe.model.deepspeed_moe import dropless_state_dict

        state_dict = dropless_state_dict(engine.module)  # collective over each expert-parallel group
    if rank == 0:
        export_hf(engine.module, run_dir / "hf", step, data_dir / "tokenizer", state_dict=state_dict,
                  recorder=recorder)
        prune_exports(run_dir / "hf", spec.keep_exports, spec.export_steps)
    _barrier()

