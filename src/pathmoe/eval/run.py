"""`evaluate_run`: every export of a run -> eval/step_<N>.csv -> eval/records.csv + selected.json,
and lm-eval's own results (task configs, versions, sample counts) -> eval/lm_eval_results.json.

Resumable per checkpoint: each checkpoint's rows are cached atomically as eval/step_<N>.csv (after
its lm-eval results, eval/step_<N>.lm_eval.json) and skipped next time (a crash loses at most the
checkpoint in flight). A cache holds the key of what produced it (the export's files, the score-changing eval settings, the val data and offline task
files) and is reused only under the same key: a retrained export or an edited eval setting is
evaluated again instead of reporting the old model's numbers. All inputs are validated before
anything is written, so bad input leaves no partial output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from pathmoe.audit.hashing import config_hash, hash_path
from pathmoe.config import EVAL_DEFAULTS  # one set of eval defaults, shared with the config loader
from pathmoe.eval.checkpoint import check_export, eval_dtype, list_exports, load_checkpoint, resolve_device
from pathmoe.eval.harness import check_tasks, evaluate_tasks
from pathmoe.eval.metrics import OFFLINE_TASKS, RECORD_COLUMNS, VAL_PPL
from pathmoe.eval.offline import build_counts, build_offline_tasks
from pathmoe.eval.perplexity import validation_perplexity
from pathmoe.eval.records import RUN_KEYS, select_checkpoint, to_frame, training_rows, write_csv
from pathmoe.eval.task_dirs import check_task_dirs
from pathmoe.io import atomic_write_json, read_json

# The eval settings that change a checkpoint's numbers (device and batch_size only change speed;
# the device's effect on the weights' dtype enters the cache key as `dtype`).
SCORE_KEYS = ("all_tasks", "num_fewshot", "limit", "ppl_tokens", "offline_examples", "offline_seed", "task_dirs")
CACHE_KEY = "cache_key"  # extra column of eval/step_<N>.csv; records.csv keeps RECORD_COLUMNS only
LM_EVAL_RESULTS = "lm_eval_results.json"  # eval/<this>: lm-eval's results of every checkpoint of the run


def load_run_config(run_config: dict | str | Path) -> dict:
    cfg = run_config if isinstance(run_config, dict) else read_json(run_config)
    for key in (*RUN_KEYS, "run_dir", "data_dir", "train"):
        if key not in cfg:
            raise ValueError(f"run config: missing key {key!r}")
    if "seq_len" not in cfg["train"]:
        raise ValueError("run config: missing key 'train.seq_len'")
    return cfg


def eval_settings(cfg: dict) -> dict:
    """The run's `eval` dict over EVAL_DEFAULTS, checked key by key."""
    given = cfg.get("eval") or {}
    unknown = sorted(set(given) - set(EVAL_DEFAULTS))
    if unknown:
        raise ValueError(f"eval: unknown key(s) {unknown}; allowed are {sorted(EVAL_DEFAULTS)}")
    ev = {**EVAL_DEFAULTS, **{k: v for k, v in given.items() if v is not None or k == "limit"}}
    for key in ("tasks", "curve_tasks"):
        if not isinstance(ev[key], list) or not all(isinstance(t, str) for t in ev[key]):
            raise ValueError(f"eval.{key}={ev[key]!r}: must be a list of task names")
    # Every export is scored on the selection tasks plus the curve tasks (Fig 3), in that order.
    ev["all_tasks"] = list(dict.fromkeys(ev["tasks"] + ev["curve_tasks"]))
    for key in ("batch_size", "ppl_tokens", "offline_examples"):
        if not isinstance(ev[key], int) or ev[key] < 1:
            raise ValueError(f"eval.{key}={ev[key]!r}: must be an integer >= 1")
    if not isinstance(ev["num_fewshot"], dict) or set(ev["num_fewshot"]) - set(ev["all_tasks"]):
        raise ValueError(f"eval.num_fewshot={ev['num_fewshot']!r}: must map tasks of eval.tasks to shot counts")
    if ev["limit"] is not None and not (isinstance(ev["limit"], (int, float)) and ev["limit"] > 0):
        raise ValueError(f"eval.limit={ev['limit']!r}: must be null or a positive number")
    if ev["device"] not in ("auto", "cpu", "cuda"):
        raise ValueError(f"eval.device={ev['device']!r}: allowed are 'auto', 'cpu', 'cuda'")
    check_task_dirs(ev["task_dirs"])
    return ev


def model_context(cfg: dict) -> int:
    """The model's context in tokens (max_seq_len): no evaluation example may be longer."""
    from pathmoe.model_rules import MODEL_DEFAULTS

    return int(cfg.get("model", {}).get("max_seq_len") or MODEL_DEFAULTS["max_seq_len"])


def _with_build_counts(rows: list[dict], offline_dir: Path | None) -> list[dict]:
    """Offline tasks' skipped/truncated counts: the candidates the builder dropped or cut plus
    what scoring found (nothing, as the builder already fitted every example)."""
    built = build_counts(offline_dir) if offline_dir is not None else {}
    out = []
    for row in rows:
        extra = built.get(row["task"], {}).get(row["metric"]) if row["metric"] != "examples" else None
        out.append({**row, "value": row["value"] + extra} if extra else row)
    return out


def evaluate_checkpoint(ckpt: Path, cfg: dict, ev: dict, offline_dir: Path | None) -> tuple[list[dict], list[dict]]:
    """Validation perplexity + every task of the run for one export: (rows, lm-eval's results JSON
    of each of its `simple_evaluate` calls)."""
    data_dir = Path(cfg["data_dir"])
    bf16 = cfg["train"].get("precision") == "bf16"
    model, tokenizer = load_checkpoint(ckpt, ev["device"], bf16=bf16, tokenizer_dir=data_dir / "tokenizer")
    ppl = validation_perplexity(model, data_dir / "shards", int(cfg["train"]["seq_len"]), ev["ppl_tokens"],
                                batch_size=ev["batch_size"])
    rows = [{"task": VAL_PPL, "metric": "ppl", "value": ppl, "stderr": float("nan")}]
    folders = ([offline_dir] if offline_dir is not None else []) + list(ev["task_dirs"])
    task_rows, lm_eval_results = evaluate_tasks(model, tokenizer, ev["all_tasks"], num_fewshot=ev["num_fewshot"],
                                                batch_size=ev["batch_size"], limit=ev["limit"], include_path=folders)
    return rows + _with_build_counts(task_rows, offline_dir), lm_eval_results


def settings_key(cfg: dict, ev: dict) -> dict:
    """Everything but the export and the offline task files that a checkpoint's rows depend on.

    The val shards' index.json stands for the data: its fingerprint covers the raw files and the
    tokenizer, its entries every shard's sha256.
    """
    index = Path(cfg["data_dir"]) / "shards" / "index.json"
    if not index.is_file():
        raise FileNotFoundError(f"no shard index {index}; run `pathmoe data tokenize` first")
    bf16 = cfg["train"].get("precision") == "bf16"
    return {
        "eval": {k: sorted(ev[k]) if k == "all_tasks" else ev[k] for k in SCORE_KEYS},
        "task_dirs": [hash_path(d)["sha256"] for d in ev["task_dirs"]],  # task YAMLs + data, by content
        "seq_len": int(cfg["train"]["seq_len"]),
        "dtype": str(eval_dtype(resolve_device(ev["device"]), bf16)),
        "shards_index": config_hash(read_json(index)),
    }


def export_key(ckpt: Path) -> list[list]:
    """Name, size and mtime_ns of every file of an export.

    Training rewrites every file of a re-made export, so a retrained checkpoint never matches an
    old cache; reading the stat instead of the content spares hashing multi-GB weights on every
    rerun. A copy that does not keep mtimes only costs a re-evaluation.
    """
    stats = [(p.name, p.stat()) for p in sorted(ckpt.iterdir()) if p.is_file()]
    return [[name, st.st_size, st.st_mtime_ns] for name, st in stats]


def _cached(path: Path, key: str) -> tuple[pd.DataFrame, dict] | None:
    """A step's cached rows and lm-eval results, if both were produced under `key` (else re-evaluate)."""
    results = path.with_suffix(".lm_eval.json")
    if not (path.is_file() and results.is_file()):
        return None
    frame = pd.read_csv(path, dtype={CACHE_KEY: str})
    if CACHE_KEY not in frame.columns or not (frame[CACHE_KEY] == key).all():
        return None
    kept = read_json(results)
    if kept.get(CACHE_KEY) != key:
        return None
    return frame[list(RECORD_COLUMNS)], kept


def evaluate_run(run_config: dict | str | Path) -> Path:
    """Evaluate every `<train_dir>/hf/step_*/` export; write `<run_dir>/eval/records.csv`, selected.json
    and lm_eval_results.json (`{"run", "checkpoints": [{"step", "checkpoint", "lm_eval": [...]}]}`, one
    lm-eval results JSON per `simple_evaluate` call of each checkpoint).

    `train_dir` (default: `run_dir`) is where the run's training wrote its checkpoints: another run's
    directory when two runs share one training (pathmoe.config).
    """
    cfg = load_run_config(run_config)
    ev = eval_settings(cfg)
    resolve_device(ev["device"])  # a GPU run on a machine without one fails here, before any writing
    check_tasks(ev["all_tasks"], ev["task_dirs"])
    run_dir = Path(cfg["run_dir"])
    train_dir = Path(cfg.get("train_dir") or run_dir)
    exports = list_exports(train_dir)
    if not exports:
        raise FileNotFoundError(f"no checkpoints to evaluate: {train_dir / 'hf'} has no step_<N>/ exports")
    for _, ckpt in exports:
        check_export(ckpt, Path(cfg["data_dir"]) / "tokenizer")
    train_rows = training_rows(train_dir)  # validates train_summary.json before anything is written
    settings = settings_key(cfg, ev)

    eval_dir = run_dir / "eval"
    offline_dir = None
    if any(t in OFFLINE_TASKS for t in ev["all_tasks"]):
        offline_dir = build_offline_tasks(cfg["data_dir"], eval_dir / "offline_tasks", seed=ev["offline_seed"],
                                          n_examples=ev["offline_examples"], max_length=model_context(cfg))
        settings["offline_tasks"] = hash_path(offline_dir)["sha256"]  # task data + YAMLs, by content
    frames, lm_eval_results = [], []
    for step, ckpt in tqdm(exports, desc=f"eval {cfg['run']}", disable=None):
        cache = eval_dir / f"step_{step}.csv"
        key = config_hash({"settings": settings, "export": export_key(ckpt)})
        cached = _cached(cache, key)
        if cached is None:
            rows, results = evaluate_checkpoint(ckpt, cfg, ev, offline_dir)
            frame = to_frame(rows, cfg, step)
            kept = {CACHE_KEY: key, "step": step, "checkpoint": str(ckpt), "lm_eval": results}
            atomic_write_json(cache.with_suffix(".lm_eval.json"), kept)  # before the csv, which marks the step done
            write_csv(frame.assign(**{CACHE_KEY: key}), cache)
        else:
            frame, kept = cached
        frames.append(frame)
        lm_eval_results.append({k: kept[k] for k in ("step", "checkpoint", "lm_eval")})
    if train_rows is not None:
        frames.append(to_frame(train_rows[1], cfg, train_rows[0]))
    records = pd.concat(frames, ignore_index=True)[list(RECORD_COLUMNS)]
    atomic_write_json(eval_dir / LM_EVAL_RESULTS, {"run": cfg["run"], "checkpoints": lm_eval_results})
    out = write_csv(records, eval_dir / "records.csv")
    atomic_write_json(eval_dir / "selected.json", select_checkpoint(records[records["task"].isin(ev["tasks"])], train_dir))
    return out
