"""Experiment configs: the shipped ones validate, bad ones fail with one line naming the key."""

import copy
import json
import subprocess
import sys

import pytest
import yaml

from pathmoe.config import ConfigError, REPO_CONFIGS, load_experiment

DEFAULT = yaml.safe_load((REPO_CONFIGS / "default.yaml").read_text())


def bad(mutate) -> str:
    cfg = copy.deepcopy(DEFAULT)
    mutate(cfg)
    with pytest.raises(ConfigError) as info:
        load_experiment(cfg)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("name,n_runs", [("default", 27), ("paper-0.9b", 29), ("paper-16b", 2)])
def test_shipped_configs_validate(name, n_runs):
    exp = load_experiment(REPO_CONFIGS / f"{name}.yaml")
    assert len(exp.runs) == n_runs


def test_run_spec_resolution():
    exp = load_experiment(DEFAULT)
    spec = exp.run_config("pathb4_s0")
    assert spec["model"]["router"] == "linear" and spec["model"]["block_size"] == 4
    assert spec["model"]["lbl_coef"] == 0.0
    assert spec["run_dir"].endswith("runs/pathb4_s0") and spec["data_dir"].endswith("data/builtin")
    assert spec["seed"] == 0
    # "all" resolves to the scale's number of layers
    assert exp.run_config("pathmoe_s0")["model"]["block_size"] == DEFAULT["scales"]["tiny"]["model"]["n_layers"]
    # per-run model overrides win over the variant
    assert exp.run_config("pathb4_lbl_s0")["model"]["lbl_coef"] == 0.01


def test_restricted_run_makes_its_source_export_the_step():
    exp = load_experiment(DEFAULT)
    init = exp.run_config("pathb8_top10_s0")["init_from"]
    # pathb8 trains as pathmoe on the toy's 8 layers (identical spec, one training; see below)
    assert init["checkpoint"].endswith("runs/pathmoe_s0/hf/step_20")
    assert init["restrict_top_paths"] == 10
    assert init["step"] == 20  # the continuation's data stream starts where the source's export was taken
    assert 20 in exp.runs["pathmoe_s0"].train["export_steps"]
    assert exp.source_run("pathb8_top10_s0") == "pathmoe_s0"


def test_seeds_expand_runs():
    cfg = copy.deepcopy(DEFAULT)
    cfg["seeds"] = [0, 1, 2]
    exp = load_experiment(cfg)
    assert exp.base_runs["indep"] == ["indep_s0", "indep_s1", "indep_s2"]
    assert exp.run_config("indep_s2")["seed"] == 2


def test_unknown_variant_names_the_key():
    msg = bad(lambda c: c["runs"]["indep"].update(variant="nope"))
    assert "runs.indep.variant" in msg and "'nope'" in msg and "pathb4" in msg


def test_unknown_top_level_key():
    msg = bad(lambda c: c.update(trian={}))
    assert "trian" in msg and "allowed keys" in msg


def test_bad_router_enum():
    msg = bad(lambda c: c["variants"]["indep"].update(router="magic"))
    assert "variants.indep.router" in msg and "'linear'" in msg


def test_top_k_larger_than_experts():
    msg = bad(lambda c: c["runs"]["indep"].update(model={"top_k": 99}))
    assert "runs.indep" in msg and "top_k" in msg


def test_bad_block_size():
    msg = bad(lambda c: c["variants"]["pathb4"].update(block_size="four"))
    assert "block_size" in msg and "'all'" in msg


def test_global_batch_not_multiple_of_micro():
    msg = bad(lambda c: c["train"].update(global_batch_size=17))
    assert "global_batch_size=17" in msg


def test_init_from_unknown_run():
    msg = bad(lambda c: c["runs"]["pathb8_top10"]["init_from"].update(run="ghost"))
    assert "init_from.run='ghost'" in msg


def test_init_from_step_beyond_source():
    msg = bad(lambda c: c["runs"]["pathb8_top10"]["init_from"].update(step=10_000))
    assert "init_from.step=10000" in msg


def test_cli_validate_one_line_error(tmp_path):
    cfg = copy.deepcopy(DEFAULT)
    cfg["runs"]["indep"]["scale"] = "huge"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = subprocess.run([sys.executable, "-m", "pathmoe.cli", "config", "validate", str(path)],
                         capture_output=True, text=True)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "runs.indep.scale='huge'" in lines[0]


def test_plan_prints_total_gpu_hours():
    res = subprocess.run([sys.executable, "-m", "pathmoe.cli", "plan", "--config", "paper-0.9b"],
                         capture_output=True, text=True, check=True)
    assert "indep_s0" in res.stdout and res.stdout.strip().splitlines()[-1].startswith("total")


def test_16b_runs_agree_between_the_paper_configs():
    """paper-16b.yaml repeats paper-0.9b.yaml's 16B block: both must train the same runs."""
    full = load_experiment(REPO_CONFIGS / "paper-0.9b.yaml")
    alone = load_experiment(REPO_CONFIGS / "paper-16b.yaml")
    where = ("run", "base", "run_dir", "train_dir", "data_dir")  # names and locations differ by design
    for in_full, in_alone in (("indep_16b_s0", "indep_s0"), ("pathmoe_16b_s0", "pathmoe_s0")):
        a, b = full.run_config(in_full), alone.run_config(in_alone)
        assert {k: v for k, v in a.items() if k not in where} == {k: v for k, v in b.items() if k not in where}
        assert full.runs[in_full].resources == alone.runs[in_alone].resources
    assert full.datasets["dclm_pro"] == alone.datasets["dclm_pro"]
    raw = {name: yaml.safe_load((REPO_CONFIGS / f"{name}.yaml").read_text()) for name in ("paper-0.9b", "paper-16b")}
    assert raw["paper-0.9b"]["report"]["tasks_16b"] == raw["paper-16b"]["report"]["tasks_16b"]
    # run separately, the 16B config must not overwrite the full reproduction's results or reports
    assert alone.output_dir != full.output_dir and alone.report_dir != full.report_dir


def test_schema_yaml_in_configs_is_the_validators_schema():
    from pathmoe.config import SCHEMA_PATH

    link = REPO_CONFIGS / "schema.yaml"
    assert link.is_symlink() and link.resolve() == SCHEMA_PATH.resolve()


def test_run_spec_carries_every_eval_setting_the_eval_stage_knows():
    from pathmoe.eval.run import EVAL_DEFAULTS as STAGE_EVAL_DEFAULTS

    spec = load_experiment(DEFAULT).run_config("indep_s0")
    assert set(spec["eval"]) <= set(STAGE_EVAL_DEFAULTS)
    assert spec["eval"]["offline_seed"] == STAGE_EVAL_DEFAULTS["offline_seed"]


def test_misspelled_resource_stage():
    msg = bad(lambda c: c["scales"]["tiny"].update(resources={"trian": {"gpus": 8}}))
    assert "scales.tiny.resources.trian" in msg and "train, eval, analysis" in msg


def test_resources_do_not_depend_on_declaring_the_stage():
    cfg = copy.deepcopy(DEFAULT)
    cfg["scales"]["tiny"]["resources"] = {"eval": {"gpus": 1}}
    declared = load_experiment(cfg).runs["indep_s0"].resources
    omitted = load_experiment(DEFAULT).runs["indep_s0"].resources
    assert declared["eval"] == {**omitted["eval"], "gpus": 1}
    assert set(omitted) == {"train", "eval", "analysis"}


def test_analysis_seq_len_beyond_the_model():
    msg = bad(lambda c: c["analysis"].update(seq_len=100_000))
    assert "analysis.seq_len=100000" in msg and "max_seq_len" in msg


def test_model_errors_name_the_section_that_holds_the_key():
    msg = bad(lambda c: c["variants"]["pathb4"].update(blok_size=4))
    assert msg.startswith("variants.pathb4: unknown model key(s) ['blok_size']")
    msg = bad(lambda c: c["scales"]["tiny"]["model"].update(n_expertz=2))
    assert msg.startswith("scales.tiny.model: unknown model key(s) ['n_expertz']")
    msg = bad(lambda c: c["scales"]["tiny"]["model"].update(n_experts=1))
    assert "scales.tiny.model + variants.indep" in msg and "top_k" in msg


def test_expert_parallel_layout_errors_before_any_job():
    def ep(size, zero=0):
        def mutate(c):
            c["scales"]["tiny"]["model"].update(dispatch="deepspeed", expert_parallel_size=size)
            c["scales"]["tiny"].setdefault("train", {})["zero_stage"] = zero
        return mutate

    assert "model.expert_parallel_size=2 must divide the run's 1 training process(es)" in bad(ep(2))
    msg = bad(ep(1, zero=3))
    assert "train.zero_stage=3 with model.dispatch='deepspeed'" in msg and "zero_stage <= 2" in msg


def test_config_commands_import_no_stage():
    """`pathmoe config get` runs inside analysis jobs and `config validate` before launching:
    neither may pay for torch, pandas or matplotlib."""
    probe = ("import sys; from pathmoe.cli import main; main(['config', 'validate', 'paper-0.9b']); "
             "print(sorted(m for m in ('torch', 'pandas', 'matplotlib', 'scipy', 'deepspeed') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert res.stdout.strip().splitlines()[-1] == "[]"


def test_train_config_is_the_run_spec_without_post_training_settings():
    """Training depends on train_config only: an eval/analysis edit must not change it (no retrain)."""
    cfg = copy.deepcopy(DEFAULT)
    before = load_experiment(copy.deepcopy(cfg))
    cfg["eval"] = {**cfg.get("eval", {}), "batch_size": 7}
    cfg["analysis"] = {**cfg.get("analysis", {}), "tokens": 1234}
    after = load_experiment(cfg)
    assert after.run_config("pathb4_s0") != before.run_config("pathb4_s0")
    assert after.train_config("pathb4_s0") == before.train_config("pathb4_s0")
    assert set(before.run_config("pathb4_s0")) - set(before.train_config("pathb4_s0")) == {"eval", "analysis", "train_dir"}


def test_identical_training_specs_train_once():
    """PathB1 (linear, blocks of 1, no LBL) is Indep-MoE without LBL: one training, both evaluated on it."""
    exp = load_experiment(DEFAULT)
    assert exp.train_run("pathb1_s0") == "indep_nolbl_s0" and "pathb1_s0" not in exp.trained_runs
    assert exp.run_config("pathb1_s0")["train_dir"].endswith("runs/indep_nolbl_s0")
    assert exp.run_config("pathb1_s0")["run_dir"].endswith("runs/pathb1_s0")  # its own eval/analysis dir
    assert exp.train_run("indep_s0") == "indep_s0"  # LBL 0.01: a different training
    # On the toy's 8 layers PathB8 is PathMoE (one block of all layers): the Table 3 continuations
    # load the export of the run that trains it, which exports the step they need.
    assert exp.train_run("pathb8_s0") == "pathmoe_s0" and exp.source_run("pathb8_top10_s0") == "pathmoe_s0"
    assert 20 in exp.runs["pathmoe_s0"].train["export_steps"]
    assert "train_dir" not in exp.train_config("indep_nolbl_s0")  # where to read, not what to train
    # export_steps do not change what is learned: the training exports the union
    paper = load_experiment(REPO_CONFIGS / "paper-0.9b.yaml")
    assert paper.train_run("pathb1_s0") == "indep_nolbl_s0"
    assert 25000 in paper.runs["indep_nolbl_s0"].train["export_steps"]
    # any difference in what is trained (here the seed) keeps runs apart
    seeds = load_experiment(DEFAULT, overrides={"runs": {"pathb1": {"seeds": [1]}}})
    assert seeds.train_run("pathb1_s1") == "pathb1_s1"


def test_runs_with_lbl_carry_the_lbl_reduction_in_their_spec():
    """The reduction changes what an LBL run learns, so the resolved spec (and state hash) names it."""
    exp = load_experiment(DEFAULT)
    assert exp.run_config("indep_s0")["model"]["lbl_reduction"] == "mean"
    assert "lbl_reduction" not in exp.run_config("pathb4_s0")["model"]  # no LBL: the reduction is moot


def test_cpu_processes_only_for_cpu_runs():
    msg = bad(lambda c: c["scales"]["tiny"].update(resources={"train": {"gpus": 8, "tasks": 2}}))
    assert "resources.train.tasks=2 with gpus=8" in msg and "leave tasks at 1" in msg


def test_data_resources_come_from_the_dataset_and_stay_out_of_its_config():
    cfg = copy.deepcopy(DEFAULT)
    cfg["datasets"]["builtin"]["resources"] = {"mem_mb": 2000}
    exp = load_experiment(cfg)
    assert exp.data_resources["builtin"] == {"mem_mb": 2000, "runtime": 1440}
    assert "resources" not in exp.dataset_config("builtin")  # scheduling never rebuilds data
    assert exp.dataset_config("builtin") == load_experiment(DEFAULT).dataset_config("builtin")
    msg = bad(lambda c: c["datasets"]["builtin"].update(resources={"cpus": 4}))
    assert "datasets.builtin.resources.cpus is not a key; allowed: mem_mb, runtime" in msg
    msg = bad(lambda c: c["datasets"]["builtin"].update(resources={"runtime": 0}))
    assert "datasets.builtin.resources.runtime=0" in msg


def test_plan_counts_slurm_jobs_per_run():
    from pathmoe.cost import estimate_gpu_hours

    costs = {c.run: c for c in estimate_gpu_hours(load_experiment(REPO_CONFIGS / "paper-0.9b.yaml"), 989e12, 0.35)}
    indep, big = costs["indep_s0"], costs["indep_16b_s0"]
    assert indep.gpus == 32 and indep.job_minutes == 2880 and indep.wall_hours == pytest.approx(145.5, abs=0.1)
    assert indep.jobs == 4  # 145.5 h at 48 h per job less the stop margin
    assert big.gpus == 128 and big.jobs == 3  # 157.7 h at 72 h


def test_train_only_resource_keys_are_refused_elsewhere():
    msg = bad(lambda c: c["scales"]["tiny"].update(resources={"eval": {"tasks": 2}}))
    assert "scales.tiny.resources.eval.tasks is not a key of that stage" in msg


def _tiny_export(path, **model_overrides) -> str:
    """An HF export of the default's `tiny` PathB4 model (as `pathmoe train` writes one)."""
    import torch

    from pathmoe.model import PathMoEConfig, PathMoEForCausalLM

    model_cfg = {**DEFAULT["scales"]["tiny"]["model"], "vocab_size": 512, "router": "linear", "block_size": 4,
                 "lbl_coef": 0.0, **model_overrides}
    torch.manual_seed(0)
    PathMoEForCausalLM(PathMoEConfig(**model_cfg)).save_pretrained(path)
    return str(path)


def _with_init_checkpoint(cfg: dict, checkpoint: str, **extra) -> None:
    cfg["runs"]["from_export"] = {"variant": "pathb4", "init_from": {"checkpoint": checkpoint, **extra}}
    cfg["runs"]["from_export"]["seeds"] = [0]


def test_init_from_an_hf_export_directory(tmp_path):
    """A run may start from an HF export directory instead of another run of the config: the run
    spec names the directory, the data stream starts at `step` (default 0), and the train job lists
    the export's files as inputs (a changed export reruns it)."""
    ckpt = _tiny_export(tmp_path / "export")
    cfg = copy.deepcopy(DEFAULT)
    _with_init_checkpoint(cfg, ckpt, restrict_top_paths=None)
    exp = load_experiment(cfg)
    init = exp.run_config("from_export_s0")["init_from"]
    assert init == {"checkpoint": ckpt, "step": 0, "restrict_top_paths": None, "path_tokens": 20_000}
    assert exp.init_checkpoint("from_export_s0") == ckpt and exp.source_run("from_export_s0") is None
    assert exp.runs["from_export_s0"].trained_by is None  # never shares pathb4's from-scratch training
    assert exp.init_checkpoint("pathb4_s0") is None


@pytest.mark.parametrize("problem, match", [
    ("missing", "is not a directory; expected an HF export directory"),
    ("hub_id", "hub ids are not downloaded"),
    ("no_weights", "has no model.safetensors"),
    ("other_model", "is a 'llama' checkpoint; allowed: a PathMoE export"),
    ("other_shape", "model.n_experts=8 but the init_from checkpoint"),
    ("both", "give exactly one of run"),
])
def test_init_from_checkpoint_is_checked_before_any_job(tmp_path, problem, match):
    ckpt = _tiny_export(tmp_path / "export", **({"n_experts": 4} if problem == "other_shape" else {}))
    if problem == "missing":
        ckpt = str(tmp_path / "nowhere")
    elif problem == "hub_id":
        ckpt = "someone/pathmoe-0.9b"
    elif problem == "no_weights":
        (tmp_path / "export" / "model.safetensors").unlink()
    elif problem == "other_model":
        conf = json.loads((tmp_path / "export" / "config.json").read_text())
        (tmp_path / "export" / "config.json").write_text(json.dumps({**conf, "model_type": "llama"}))
    extra = {"run": "pathb4", "step": 20} if problem == "both" else {}
    msg = bad(lambda c: _with_init_checkpoint(c, ckpt, **extra))
    assert match in msg


def test_init_from_checkpoint_loss_settings_may_differ(tmp_path):
    """Only the keys that shape the weights must match: LBL and dispatch are the run's own."""
    ckpt = _tiny_export(tmp_path / "export", lbl_coef=0.01, dispatch="deepspeed")
    cfg = copy.deepcopy(DEFAULT)
    _with_init_checkpoint(cfg, ckpt)
    assert load_experiment(cfg).run_config("from_export_s0")["init_from"]["checkpoint"] == ckpt
