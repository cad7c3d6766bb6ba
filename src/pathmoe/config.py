"""Experiment config: load, validate, and resolve into per-dataset and per-run specs.

One YAML file declares a whole experiment: model scales, datasets, routing variants, the runs
(variant x scale x dataset x seeds, with overrides) and which runs feed which table or figure.
Everything is checked here, before any job starts, and every error is one line naming the key.
Stages never read the YAML: they get the resolved JSON specs this module writes
(docs/ARCHITECTURE.md, "Run spec").
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

from pathmoe.model_rules import MODEL_DEFAULTS, check_model_config

SCHEMA_PATH = Path(__file__).with_name("config_schema.yaml")
# The named configs ship as package data: src/pathmoe/configs links to the repository's configs/,
# so an editable checkout reads (and lists) the live files and a wheel install its own copies.
REPO_CONFIGS = Path(__file__).with_name("configs")
REPORT_OWNER_FILE = "experiment.json"

TRAIN_DEFAULTS: dict[str, Any] = {
    "steps": 300, "micro_batch_size": 8, "global_batch_size": 16, "seq_len": 128,
    "lr": 3e-3, "min_lr_ratio": 0.1, "warmup_steps": 30, "weight_decay": 0.1,
    "betas": [0.9, 0.95], "eps": 1e-8, "grad_clip": 1.0, "precision": "fp32", "zero_stage": 0,
    "device": "auto", "log_every": 10, "ckpt_every": 100, "export_every": 50, "export_steps": [],
    "keep_exports": 5, "trackers": [], "compile": False, "activation_checkpointing": False,
    "on_data_change": "restart",
}
EVAL_DEFAULTS: dict[str, Any] = {
    "tasks": ["offline_next", "offline_cloze"], "curve_tasks": [], "num_fewshot": {}, "batch_size": 16,
    "limit": None, "device": "auto", "ppl_tokens": 50_000, "offline_examples": 200, "offline_seed": 1234,
    "task_dirs": [],
}
ANALYSIS_DEFAULTS: dict[str, Any] = {
    "tokens": 20_000, "seq_len": 128, "batch_size": 16, "permute_p": [0.0, 0.25, 0.5, 0.75, 1.0],
    "top_paths": 12, "device": "auto",
}
# Per-stage SLURM resources of every run, resolved whether or not its scale declares the stage, so
# a job's resources never depend on whether a scale names the stage; the rules read them
# (rules/common.smk stage_resource). A job's CPUs: `cpus_per_gpu` (train), `cpus` (eval).
RESOURCE_DEFAULTS: dict[str, dict[str, Any]] = {
    # train.tasks: processes per node of a CPU-only run (GPU runs: one per GPU); train.stop_margin_s:
    # checkpoint and requeue this long before the job's time limit (pathmoe.train.preempt)
    "train": {"gpus": 0, "nodes": 1, "tasks": 1, "cpus_per_gpu": 8, "mem_mb": 4000, "runtime": 60,
              "stop_margin_s": 600},
    "eval": {"gpus": 0, "nodes": 1, "cpus": 8, "mem_mb": 8000, "runtime": 60},
    "analysis": {"gpus": 0, "nodes": 1, "cpus": 8, "mem_mb": 8000, "runtime": 60},
}
# SLURM resources of a dataset's data jobs (`datasets.<name>.resources`; tokenize also gets
# num_workers CPUs). Scheduling only: kept out of the data stage's config and hashes.
DATA_RESOURCE_DEFAULTS: dict[str, int] = {"mem_mb": 8000, "runtime": 1440}
# Keys of a `datasets:` entry that only name it in reports (Table 5: "Fineweb-100B", "Llama 2 (32k)").
DATASET_NAME_KEYS = ("label", "tokenizer_label")
# Run-spec sections only the stages after training read (see Experiment.train_config); `train_dir`
# is where they find the run's checkpoints (another run's directory when the training is shared).
POST_TRAINING_KEYS = ("eval", "analysis", "train_dir")
# Run-spec keys that name a run without changing what it trains: runs equal in everything else
# (and in `train` up to `export_steps`, which are merged) share one training.
NAMING_KEYS = ("run", "base", "variant", "run_dir")
COST_DEFAULTS: dict[str, Any] = {"gpu_flops": 989e12, "mfu": 0.35}
# `snakemake audit`: `pathmoe` stages whose deterministic jobs are not re-executed (paper configs
# skip `data`: re-running it downloads and tokenizes the whole corpus again).
AUDIT_DEFAULTS: dict[str, Any] = {"reexec_skip_stages": []}


class ConfigError(ValueError):
    """A bad experiment config; the message is one line naming the key and what is allowed."""


# Names and directories reach file paths and the rules' shell commands (quoted there as well):
# only these characters are accepted, so no config value can carry shell syntax or a space.
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
SAFE_PATH = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./-]*")
NAME_RULE = "letters, digits, '_', '.' and '-', starting with a letter, digit or '_'"
PATH_RULE = "letters, digits, '_', '.', '-' and '/', not starting with '-' (no spaces or shell characters)"
NAMED_SECTIONS = ("scales", "datasets", "variants", "runs")


def deep_merge(base: dict, override: dict | None) -> dict:
    """Return `base` updated recursively by `override` (neither is modified)."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass(frozen=True)
class RunSpec:
    """One training run: a base run from the config expanded for one seed."""

    run: str          # run id, "<base>_s<seed>": the directory name under <out>/runs/
    base: str         # the name under `runs:` in the config
    variant: str
    scale: str
    dataset: str
    seed: int
    model: dict
    train: dict
    eval: dict
    analysis: dict
    resources: dict
    init_from: dict | None = None
    trained_by: str | None = None   # the run whose training this one shares (identical spec); None: its own
    init_source: str | None = None  # continuations: the run that trains the source (whose exports it loads)

    @property
    def train_run(self) -> str:
        """The run whose directory holds this run's checkpoints and train_summary.json."""
        return self.trained_by or self.run

    def to_json(self, output_dir: Path) -> dict:
        """The resolved run spec of docs/ARCHITECTURE.md, as `run_config.json` holds it."""
        init = None
        if self.init_from is not None:
            if "checkpoint" in self.init_from:  # an HF export directory, as the config gives it
                checkpoint = self.init_from["checkpoint"]
            else:
                src = self.init_source or f"{self.init_from['run']}_s{self.seed}"
                checkpoint = str(output_dir / "runs" / src / "hf" / f"step_{self.init_from['step']}")
            init = {
                "checkpoint": checkpoint,
                "step": self.init_from.get("step", 0),  # the source's step: the data stream continues from it
                "restrict_top_paths": self.init_from.get("restrict_top_paths"),
                "path_tokens": self.init_from.get("path_tokens", 20_000),
            }
        return {
            "run": self.run, "base": self.base, "variant": self.variant, "scale": self.scale,
            "dataset": self.dataset, "seed": self.seed,
            "run_dir": str(output_dir / "runs" / self.run),
            "train_dir": str(output_dir / "runs" / self.train_run),
            "data_dir": str(output_dir / "data" / self.dataset),
            "model": self.model, "train": self.train, "eval": self.eval,
            "analysis": self.analysis, "init_from": init,
        }


@dataclass
class Experiment:
    """A validated experiment: datasets and runs resolved, ready to be expanded into jobs."""

    name: str
    output_dir: Path
    report_dir: Path
    datasets: dict[str, dict]
    runs: dict[str, RunSpec]
    base_runs: dict[str, list[str]] = field(default_factory=dict)
    cost: dict = field(default_factory=dict)
    audit: dict = field(default_factory=lambda: copy.deepcopy(AUDIT_DEFAULTS))
    report: Any = None  # pathmoe.report.ReportSpec when the config has a `report:` section
    data_resources: dict[str, dict] = field(default_factory=dict)  # dataset -> DATA_RESOURCE_DEFAULTS keys
    # <config>.lock.yaml beside the config file: the hub commits its downloads are pinned to
    # (pathmoe.hub); None for a config given as a dict
    revision_lock: Path | None = None

    def revision_lock_args(self, dataset: str) -> list[str]:
        """`--revision-lock <abs path>` for a data command of `dataset` when it downloads from the hub."""
        from pathmoe.data.config import hub_downloads

        if self.revision_lock is None or not hub_downloads(self.datasets[dataset]):
            return []
        return ["--revision-lock", str(self.revision_lock.absolute())]

    def run_config(self, run: str) -> dict:
        return self.runs[run].to_json(self.output_dir)

    def train_config(self, run: str) -> dict:
        """The run spec without its eval and analysis settings: what training depends on.

        The train job reads this file, not run_config.json, so editing an eval or analysis setting
        reruns evaluation and analyses but never retrains (and never resets a run's checkpoints).
        """
        return {k: v for k, v in self.run_config(run).items() if k not in POST_TRAINING_KEYS}

    def dataset_config(self, name: str) -> dict:
        return self.datasets[name]

    @property
    def trained_runs(self) -> list[str]:
        """The runs that train (one per distinct training spec), in config order."""
        return [run for run, spec in self.runs.items() if spec.trained_by is None]

    def train_run(self, run: str) -> str:
        """The run whose training `run` uses: itself, or the first run with an identical training spec."""
        return self.runs[run].train_run

    def source_run(self, run: str) -> str | None:
        """The (trained) run whose export `run` continues from (path-restricted runs), if any."""
        return self.runs[run].init_source

    def init_checkpoint(self, run: str) -> str | None:
        """The HF export directory `run` starts from when its init_from names a `checkpoint`."""
        return (self.runs[run].init_from or {}).get("checkpoint")


def _fail(msg: str) -> NoReturn:
    raise ConfigError(msg)


def _validate_schema(cfg: dict) -> None:
    import jsonschema

    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        err = errors[0]
        key = ".".join(str(p) for p in err.absolute_path) or "<top level>"
        if err.validator == "additionalProperties":
            allowed = sorted(err.schema.get("properties", {}))
            _fail(f"config key {key}: {err.message}; allowed keys: {', '.join(allowed)}")
        if err.validator == "enum" and "propertyNames" in err.schema_path:
            _fail(f"config key {key}.{err.instance} is not allowed; allowed keys: {', '.join(err.validator_value)}")
        if err.validator == "enum":
            _fail(f"config key {key}={err.instance!r} is not allowed; allowed: {', '.join(map(repr, err.validator_value))}")
        if err.validator == "oneOf" and key.endswith("block_size"):
            _fail(f"config key {key}={err.instance!r} is not allowed; allowed: a positive integer or 'all'")
        _fail(f"config key {key}: {err.message}")


def _train_sections(cfg: dict) -> list[tuple[str, Any]]:
    """(config key, section) of every `train:` section: top level, per scale, per run."""
    found = [("train", cfg.get("train"))]
    for section in ("scales", "runs"):
        entries = cfg.get(section)
        if isinstance(entries, dict):
            found += [(f"{section}.{k}.train", v.get("train")) for k, v in entries.items() if isinstance(v, dict)]
    return [(key, sec) for key, sec in found if isinstance(sec, dict)]


def _check_replaced_keys(cfg: dict) -> None:
    """A key an earlier version accepted gets a one-line pointer to its replacement."""
    from pathmoe.tracker_rules import REPLACED_KEY

    for key, section in _train_sections(cfg):
        if REPLACED_KEY[0] in section:
            _fail(f"config key {key}.{REPLACED_KEY[0]}: " + REPLACED_KEY[1].split(" ", 1)[1])


def _check_trackers(cfg: dict) -> None:
    """Every tracker a train section names has its package installed (the schema checked the names)."""
    from pathmoe.tracker_rules import check_trackers

    for key, section in _train_sections(cfg):
        if "trackers" in section:
            try:
                check_trackers(section["trackers"], f"{key}.trackers")
            except ValueError as exc:
                _fail(f"config key {exc}")


def _check_names(cfg: dict) -> None:
    """Every name and directory that reaches a path or a shell command is made of safe characters."""
    if not SAFE_NAME.fullmatch(cfg["name"]):
        _fail(f"config key name={cfg['name']!r} is not allowed: use {NAME_RULE}")
    for section in NAMED_SECTIONS:
        for key in cfg[section]:
            if not SAFE_NAME.fullmatch(key):
                _fail(f"config key {section}.{key!r}: name not allowed; use {NAME_RULE}")
    for key in ("output_dir", "report_dir"):
        if key in cfg and not SAFE_PATH.fullmatch(cfg[key]):
            _fail(f"config key {key}={cfg[key]!r} is not allowed: use {PATH_RULE}")


def _check_finite(value: Any, key: str = "") -> None:
    """No NaN or infinity anywhere (YAML's .nan / .inf pass every numeric bound of the schema)."""
    if isinstance(value, float) and not math.isfinite(value):
        _fail(f"config key {key or '<top level>'}={value!r} is not allowed: numbers must be finite")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite(v, f"{key}.{i}")


def _check_eval_tasks(prefix: str, evl: dict) -> None:
    """Task names exist (offline tasks, the installed lm-eval's task index) and few-shot counts name
    listed tasks. `prefix` locates the merged eval section in messages ("" or "runs.<base>.")."""
    from pathmoe.eval.task_dirs import check_task_dirs
    from pathmoe.eval.task_index import OFFLINE_TASKS, unknown_tasks

    try:  # the folders the names may come from, first
        check_task_dirs(evl["task_dirs"])
    except (ValueError, FileNotFoundError) as exc:
        _fail(f"config key {prefix}{exc}")
    for field_name in ("tasks", "curve_tasks"):
        unknown = unknown_tasks(evl[field_name], evl["task_dirs"])
        if unknown:
            _fail(f"config key {prefix}eval.{field_name}: unknown task(s) {unknown}; allowed: an offline task "
                  f"({', '.join(OFFLINE_TASKS)}), a task of eval.task_dirs, or a task/group of the installed "
                  "lm-eval (`lm_eval ls tasks`)")
    listed = set(evl["tasks"]) | set(evl["curve_tasks"])
    stray = sorted(set(evl["num_fewshot"]) - listed)
    if stray:
        _fail(f"config key {prefix}eval.num_fewshot names task(s) {stray} that are in neither eval.tasks "
              f"nor eval.curve_tasks")


def _data_resources(name: str, declared: Any) -> dict[str, int]:
    if not isinstance(declared, dict):
        _fail(f"datasets.{name}.resources={declared!r} is not allowed; allowed: a mapping of "
              f"{', '.join(DATA_RESOURCE_DEFAULTS)}")
    for key, value in declared.items():
        if key not in DATA_RESOURCE_DEFAULTS:
            _fail(f"datasets.{name}.resources.{key} is not a key; allowed: {', '.join(DATA_RESOURCE_DEFAULTS)}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            _fail(f"datasets.{name}.resources.{key}={value!r} is not allowed; allowed: an integer >= 1")
    return {**DATA_RESOURCE_DEFAULTS, **declared}


def _check_run_settings(base: str, model: dict, train: dict, resources: dict) -> None:
    """Cross-key rules that would otherwise fail only inside a job."""
    res = resources["train"]
    if res["gpus"] and res["tasks"] != 1:
        _fail(f"runs.{base}: resources.train.tasks={res['tasks']} with gpus={res['gpus']}; a GPU run has one "
              "process per GPU: leave tasks at 1 (tasks is for CPU-only runs)")
    if train["warmup_steps"] > train["steps"]:
        _fail(f"runs.{base}.train.warmup_steps={train['warmup_steps']} exceeds train.steps={train['steps']}")
    merged = {**MODEL_DEFAULTS, **model}
    ep = merged["expert_parallel_size"]
    if merged["dispatch"] == "deepspeed" and train["zero_stage"] > 2:
        _fail(f"runs.{base}.train.zero_stage={train['zero_stage']} with model.dispatch='deepspeed': DeepSpeed's "
              "MoE layers support ZeRO stages 0-2; use zero_stage <= 2 or dispatch: dropless")
    if merged["dispatch"] == "deepspeed" and ep > 1:
        procs = (resources["train"]["gpus"] or resources["train"]["tasks"]) * resources["train"]["nodes"]
        if procs % ep:
            _fail(f"runs.{base}.model.expert_parallel_size={ep} must divide the run's {procs} training "
                  f"process(es) (resources.train gpus, or tasks for a CPU run, x nodes)")


def check_report_owner(exp: Experiment) -> None:
    """Refuse a report_dir that already holds another experiment's reports (its experiment.json)."""
    marker = exp.report_dir / REPORT_OWNER_FILE
    if not marker.is_file():
        return
    try:
        owner = json.loads(marker.read_text())
    except (OSError, ValueError):
        owner = {}
    if owner != report_owner(exp):
        _fail(f"report_dir={str(exp.report_dir)!r} holds the reports of experiment {owner.get('name')!r} "
              f"(output_dir {owner.get('output_dir')!r}, per {marker}); give experiment {exp.name!r} a "
              f"report_dir of its own (default: reports/<name>)")


def report_owner(exp: Experiment) -> dict:
    """What `<report_dir>/experiment.json` says: whose reports the directory holds."""
    return {"name": exp.name, "output_dir": str(exp.output_dir)}


def _check_model_keys(key: str, keys: Any, extra: tuple[str, ...] = ()) -> None:
    """Fail on a model key that no model has, naming the config section it is written in."""
    unknown = sorted(set(keys) - set(MODEL_DEFAULTS) - set(extra))
    if unknown:
        _fail(f"{key}: unknown model key(s) {unknown}; allowed: {', '.join([*extra, *MODEL_DEFAULTS])}")


def _resolve_model(base: str, scale: str, variant_name: str, scale_model: dict, variant: dict,
                   override: dict | None) -> dict:
    """The run's model: scale < variant < run override, checked as a whole.

    Unknown keys were already reported against the section that holds them; a bad merged value
    names the sections it was merged from, since `runs.<base>.model` usually is not in the file.
    """
    model = deep_merge(scale_model, {k: v for k, v in variant.items() if k != "label"})
    model = deep_merge(model, override)
    if model.get("block_size") == "all":
        model["block_size"] = model.get("n_layers")
    if model.get("lbl_coef", MODEL_DEFAULTS["lbl_coef"]) and "lbl_reduction" not in model:
        # how the loss is reduced changes what a run with LBL learns: part of its identity (state hash)
        model["lbl_reduction"] = MODEL_DEFAULTS["lbl_reduction"]
    probe = {**MODEL_DEFAULTS, **model}
    if probe.get("vocab_size") is None:
        probe["vocab_size"] = 2  # resolved from the tokenizer at train time; any size validates the rest
    try:
        check_model_config(probe)
    except ValueError as exc:
        sources = f"scales.{scale}.model + variants.{variant_name}" + (f" + runs.{base}.model" if override else "")
        _fail(f"runs.{base} (model from {sources}): {exc}")
    return model


def load_experiment(source: str | Path | dict, overrides: dict | None = None,
                    config_file: str | Path | None = None) -> Experiment:
    """Load and validate an experiment config (a YAML path or an already-parsed dict).

    `config_file` is the YAML a dict was read from (Snakemake's --configfile): the hub revision
    lock lives beside it (`<config>.lock.yaml`, pathmoe.hub); a path `source` is its own.
    Raises ConfigError with a one-line message naming the bad key on any problem, so a bad
    config fails before a single job starts.
    """
    if isinstance(source, dict):
        cfg = copy.deepcopy(source)
    else:
        path = Path(source)
        if not path.is_file():
            _fail(f"config file {path} does not exist")
        try:
            cfg = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            _fail(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}")
        if not isinstance(cfg, dict):
            _fail(f"config file {path} must hold a mapping at the top level")
        config_file = path
    cfg = deep_merge(cfg, overrides)
    _check_finite(cfg)
    _check_replaced_keys(cfg)
    _validate_schema(cfg)
    _check_names(cfg)
    _check_trackers(cfg)

    from pathmoe.data import validate_dataset_config

    datasets, dataset_names, data_resources = {}, {}, {}
    for name, dcfg in cfg["datasets"].items():
        data_resources[name] = _data_resources(name, dcfg.pop("resources", {}))
        # printed names (Table 5) are report settings: kept out of the data stage's config and hashes
        dataset_names[name] = {k: dcfg.pop(k) for k in DATASET_NAME_KEYS if k in dcfg}
        for key, value in dataset_names[name].items():
            if not isinstance(value, str) or not value:
                _fail(f"datasets.{name}.{key}={value!r} is not allowed; allowed: a non-empty string")
        try:
            datasets[name] = validate_dataset_config(dcfg)
        except (ValueError, FileNotFoundError) as exc:
            _fail(f"datasets.{name}: {exc}")

    defaults = cfg.get("defaults", {})
    seeds_default = cfg.get("seeds", [0])
    train_top = deep_merge(TRAIN_DEFAULTS, cfg.get("train"))
    eval_top = deep_merge(EVAL_DEFAULTS, cfg.get("eval"))
    _check_eval_tasks("", eval_top)
    analysis = deep_merge(ANALYSIS_DEFAULTS, cfg.get("analysis"))

    for name, scfg in cfg["scales"].items():
        _check_model_keys(f"scales.{name}.model", scfg["model"])
    for name, vcfg in cfg["variants"].items():
        _check_model_keys(f"variants.{name}", vcfg, extra=("label",))
    for base, rcfg in cfg["runs"].items():
        _check_model_keys(f"runs.{base}.model", rcfg.get("model") or {})

    runs: dict[str, RunSpec] = {}
    base_runs: dict[str, list[str]] = {}
    for base, rcfg in cfg["runs"].items():
        variant = rcfg["variant"]
        if variant not in cfg["variants"]:
            _fail(f"runs.{base}.variant={variant!r} is not a defined variant; allowed: {', '.join(cfg['variants'])}")
        scale = rcfg.get("scale", defaults.get("scale"))
        if scale not in cfg["scales"]:
            _fail(f"runs.{base}.scale={scale!r} is not a defined scale; allowed: {', '.join(cfg['scales'])}")
        dataset = rcfg.get("dataset", defaults.get("dataset"))
        if dataset not in datasets:
            _fail(f"runs.{base}.dataset={dataset!r} is not a defined dataset; allowed: {', '.join(datasets)}")
        scfg = cfg["scales"][scale]
        model = _resolve_model(base, scale, variant, scfg["model"], cfg["variants"][variant], rcfg.get("model"))
        train = deep_merge(deep_merge(train_top, scfg.get("train")), rcfg.get("train"))
        if train["global_batch_size"] % train["micro_batch_size"]:
            _fail(f"runs.{base}.train.global_batch_size={train['global_batch_size']} must be a multiple of "
                  f"micro_batch_size={train['micro_batch_size']}")
        max_seq_len = model.get("max_seq_len", MODEL_DEFAULTS["max_seq_len"])
        if train["seq_len"] > max_seq_len:
            _fail(f"runs.{base}.train.seq_len={train['seq_len']} exceeds model.max_seq_len={max_seq_len}")
        if analysis["seq_len"] > max_seq_len:
            _fail(f"analysis.seq_len={analysis['seq_len']} exceeds model.max_seq_len={max_seq_len} "
                  f"of runs.{base} (scale {scale})")
        evl = deep_merge(deep_merge(eval_top, scfg.get("eval")), rcfg.get("eval"))
        _check_task_dirs(base, evl["task_dirs"])
        if scfg.get("eval") or rcfg.get("eval"):
            _check_eval_tasks(f"runs.{base}.", evl)  # merged: eval < scales.<scale>.eval < runs.<base>.eval
        declared = scfg.get("resources", {})
        for stage, keys in declared.items():
            extra = sorted(set(keys) - set(RESOURCE_DEFAULTS[stage]))
            if extra:
                _fail(f"scales.{scale}.resources.{stage}.{extra[0]} is not a key of "
                      f"that stage; allowed: {', '.join(RESOURCE_DEFAULTS[stage])}")
        resources = {stage: deep_merge(stage_defaults, declared.get(stage))
                     for stage, stage_defaults in RESOURCE_DEFAULTS.items()}
        _check_run_settings(base, model, train, resources)
        base_runs[base] = []
        for seed in rcfg.get("seeds", seeds_default):
            run_id = f"{base}_s{seed}"
            runs[run_id] = RunSpec(
                run=run_id, base=base, variant=variant, scale=scale, dataset=dataset, seed=seed,
                model=model, train=train, eval=evl, analysis=analysis,
                resources=resources, init_from=rcfg.get("init_from"),
            )
            base_runs[base].append(run_id)

    _resolve_init_from(cfg, runs)
    output_dir = Path(cfg.get("output_dir", f"results/{cfg['name']}"))
    _share_identical_trainings(runs, output_dir)
    exp = Experiment(
        name=cfg["name"], output_dir=output_dir, report_dir=Path(cfg.get("report_dir", f"reports/{cfg['name']}")),
        datasets=datasets, runs=runs, base_runs=base_runs, cost=deep_merge(COST_DEFAULTS, cfg.get("cost")),
        data_resources=data_resources,
        audit=deep_merge(AUDIT_DEFAULTS, cfg.get("audit")),
    )
    if config_file is not None:
        exp.revision_lock = _check_revision_lock(Path(config_file), datasets)
    if "report" in cfg:
        from pathmoe.report import parse_report_spec

        try:
            exp.report = parse_report_spec(cfg["report"], set(runs), run_groups=base_runs,
                                           dataset_names={k: v for k, v in dataset_names.items() if v})
        except ValueError as exc:
            _fail(str(exc))
    return exp


def _check_revision_lock(config_file: Path, datasets: dict[str, dict]) -> Path:
    """The config's lock file, checked: readable if present, and writable where a download still
    has to pin a revision (the first download writes it)."""
    from pathmoe.data.config import hub_downloads
    from pathmoe.hub import lock_path_for, read_lock

    lock = lock_path_for(config_file)
    try:
        pins = {(e["kind"], e["repo"], e["revision"] or "") for e in read_lock(lock)}
    except ValueError as exc:
        _fail(f"{exc}; fix it or delete it to re-resolve every revision at the next download")
    for name, dcfg in datasets.items():
        for kind, repo, revision in hub_downloads(dcfg):
            if (kind, repo, revision or "") in pins:
                continue
            target = lock if lock.exists() else lock.parent
            if not os.access(target, os.W_OK):
                _fail(f"datasets.{name}: hub {kind} {repo!r} (revision {revision!r}) is not pinned in {lock}, and "
                      f"the first download cannot write it there ({target} is not writable); copy the config to a "
                      "writable directory")
    return lock


def _check_task_dirs(base: str, task_dirs: list[str]) -> None:
    """eval.task_dirs are folders of lm-eval task YAMLs (checked here, before any job starts)."""
    from pathmoe.eval.task_dirs import check_task_dirs

    try:
        check_task_dirs(task_dirs)
    except (ValueError, FileNotFoundError) as exc:
        _fail(f"runs.{base}: {exc}")


# Model keys that do not shape or define the weights: a run may start from a checkpoint that differs
# in them (its own losses, dispatch and parallelism; initialisation is replaced by the checkpoint).
NON_WEIGHT_MODEL_KEYS = ("lbl_coef", "lbl_reduction", "z_loss_coef", "dispatch", "capacity_factor",
                         "expert_parallel_size", "initializer_range")
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def _check_init_checkpoint(spec: RunSpec) -> None:
    """init_from.checkpoint: a PathMoE HF export directory whose weights fit the run's model."""
    where = f"runs.{spec.base}.init_from.checkpoint"
    ckpt = Path(spec.init_from["checkpoint"])
    if not ckpt.is_dir():
        hint = (" (hub ids are not downloaded: fetch the checkpoint at a pinned revision and give its directory)"
                if HUB_ID.match(str(ckpt)) else "")
        _fail(f"{where}={str(ckpt)!r} is not a directory; expected an HF export directory "
              f"(config.json + model.safetensors){hint}")
    for name in ("config.json", "model.safetensors"):
        if not (ckpt / name).is_file():
            _fail(f"{where}={str(ckpt)!r} has no {name}; expected an HF export directory (config.json + model.safetensors)")
    try:
        conf = json.loads((ckpt / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        _fail(f"{where}={str(ckpt)!r}: config.json is not valid JSON ({exc})")
    if not isinstance(conf, dict) or conf.get("model_type") != "pathmoe":
        found = conf.get("model_type") if isinstance(conf, dict) else None
        _fail(f"{where}={str(ckpt)!r} is a {found!r} checkpoint; allowed: a PathMoE export (model_type 'pathmoe')")
    for key, default in MODEL_DEFAULTS.items():
        ours = spec.model.get(key, default)
        if key in NON_WEIGHT_MODEL_KEYS or (key == "vocab_size" and ours is None):
            continue
        theirs = conf.get(key, default)
        if ours != theirs:
            _fail(f"runs.{spec.base}: model.{key}={ours!r} but the init_from checkpoint {str(ckpt)!r} has "
                  f"{key}={theirs!r}; the run's model must match the checkpoint's weights")


def _resolve_init_from(cfg: dict, runs: dict[str, RunSpec]) -> None:
    """Check continuations and runs starting from a checkpoint; make source runs export the needed step."""
    for run_id, spec in list(runs.items()):
        if spec.init_from is None:
            continue
        given = [key for key in ("run", "checkpoint") if key in spec.init_from]
        if len(given) != 1:
            _fail(f"runs.{spec.base}.init_from: give exactly one of run (a run of this config, with step) or "
                  f"checkpoint (an HF export directory); got {given or 'neither'}")
        if given == ["checkpoint"]:
            _check_init_checkpoint(spec)
            continue
        if spec.init_from.get("step", 0) < 1:
            _fail(f"runs.{spec.base}.init_from.step={spec.init_from.get('step')!r}: a continuation of a run "
                  "needs the source run's step (an integer >= 1)")
        src_base = spec.init_from["run"]
        if src_base not in cfg["runs"]:
            _fail(f"runs.{spec.base}.init_from.run={src_base!r} is not a defined run; allowed: {', '.join(cfg['runs'])}")
        src = runs.get(f"{src_base}_s{spec.seed}")
        if src is None:
            _fail(f"runs.{spec.base}.init_from.run={src_base!r} has no seed {spec.seed}")
        if src.init_from is not None and "run" in src.init_from:
            _fail(f"runs.{spec.base}.init_from.run={src_base!r} is itself a continuation; chains are not supported")
        step = spec.init_from["step"]
        if step > src.train["steps"]:
            _fail(f"runs.{spec.base}.init_from.step={step} exceeds runs.{src_base}.train.steps={src.train['steps']}")
        if (src.model, src.scale) != (spec.model, spec.scale):
            _fail(f"runs.{spec.base}: model must equal that of init_from.run={src_base!r} to load its weights")
        if step not in src.train["export_steps"]:
            new_train = deep_merge(src.train, {"export_steps": sorted({*src.train["export_steps"], step})})
            runs[src.run] = RunSpec(**{**src.__dict__, "train": new_train})


def training_identity(run_config: dict) -> str:
    """What a run trains, as a canonical string: its train_config.json without the keys that only
    name it (NAMING_KEYS) and without `train.export_steps` (which checkpoints are kept, not what is
    learned). Equal identities train the same weights, bit for bit on CPU."""
    spec = {k: v for k, v in run_config.items() if k not in NAMING_KEYS and k not in POST_TRAINING_KEYS}
    spec["train"] = {k: v for k, v in spec["train"].items() if k != "export_steps"}
    return json.dumps(spec, sort_keys=True)


def _share_identical_trainings(runs: dict[str, RunSpec], output_dir: Path) -> None:
    """Let runs with identical training specs share one training (the first in config order).

    E.g. the default's `pathb1` (PathB1: linear router, blocks of 1, no LBL) and `indep_nolbl`
    (Indep-MoE with LBL 0) are one model: it is trained once and both are evaluated on it. The
    training run exports the union of their `export_steps`. Sources are resolved before
    continuations, whose identity names the run that trains their source.
    """
    first_of: dict[str, str] = {}
    for continuations in (False, True):
        for run_id in list(runs):
            spec = runs[run_id]
            if (spec.init_from is not None and "run" in spec.init_from) != continuations:
                continue
            if continuations:
                source = f"{spec.init_from['run']}_s{spec.seed}"
                spec = runs[run_id] = dataclasses.replace(spec, init_source=runs[source].train_run)
            first = first_of.setdefault(training_identity(spec.to_json(output_dir)), run_id)
            if first == run_id:
                continue
            runs[run_id] = dataclasses.replace(spec, trained_by=first)
            merged = sorted({*runs[first].train["export_steps"], *spec.train["export_steps"]})
            if merged != list(runs[first].train["export_steps"]):
                runs[first] = dataclasses.replace(runs[first], train={**runs[first].train, "export_steps": merged})


def find_config(name: str | None) -> Path:
    """Resolve a config name ("default", "paper-0.9b") or path to a file.

    A name is looked up among the configs installed with the package (in a checkout: configs/);
    the returned path is resolved, so files written beside a named config land in configs/.
    """
    if name is None:
        name = "default"
    path = Path(name)
    if path.is_file():
        return path
    candidate = REPO_CONFIGS / f"{name}.yaml"
    if candidate.is_file():
        return candidate.resolve()
    known = sorted(p.stem for p in REPO_CONFIGS.glob("*.yaml") if p.stem not in ("schema", "paper_reference"))
    _fail(f"config {name!r} not found: neither a file nor a named config; named configs: {', '.join(known)}")
