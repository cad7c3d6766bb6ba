"""Integrity of data and weights: token shards, HF exports and DeepSpeed checkpoints are hashed
and audited; a corrupted export is a one-line error in eval and analysis, never a changed number;
a run directory with missing or inconsistent markers stops instead of silently restarting."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest
from train_fixtures import DATASET, run_config, tiny_data  # noqa: F401  (tiny_data is a fixture)

from pathmoe.audit import verify_dir
from pathmoe.audit.commands import main as audit_main
from pathmoe.cli import main as cli_main
from pathmoe.io import read_json

pytestmark = pytest.mark.slow  # trains a tiny run through DeepSpeed (tens of seconds on 2 cores)

TRAIN = {"steps": 10, "ckpt_every": 5, "export_every": 5, "keep_exports": 2}


def statuses(directory: Path) -> dict[str, str]:
    return {str(r.output.relative_to(directory)): r.status for r in verify_dir(directory)}


def one_detail(directory: Path, artifact: str) -> str:
    [res] = [r for r in verify_dir(directory) if str(r.output.relative_to(directory)) == artifact]
    assert res.status == "tampered", res
    [line] = res.details
    assert "\n" not in line
    return line


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def weight_offset(safetensors: Path) -> int:
    """A byte inside the tensor data (after the 8-byte length and the JSON header)."""
    (header_len,) = struct.unpack("<Q", safetensors.read_bytes()[:8])
    return 8 + header_len + 100


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data):  # noqa: F811
    """A finished 10-step run (exports at steps 5 and 10, a DeepSpeed checkpoint at step 5) and a
    pristine copy of it."""
    from pathmoe.train import train

    run = tmp_path_factory.mktemp("runs") / "r"
    train(run_config(run, tiny_data, train=TRAIN))
    shutil.copytree(run, run.with_name("pristine"))
    return run


@pytest.fixture
def run(trained):
    """The trained run directory, restored to its pristine state for each test (same path: the run
    spec, and so its state hash, names it)."""
    shutil.rmtree(trained)
    shutil.copytree(trained.with_name("pristine"), trained)
    return trained


def test_training_records_every_export_and_checkpoint(run):
    assert (run / "hf/step_5.prov.json").is_file() and (run / "hf/step_10.prov.json").is_file()
    assert (run / "ds_ckpt/step_5.prov.json").is_file()
    assert statuses(run) == {"hf/step_5": "ok", "hf/step_10": "ok", "ds_ckpt/step_5": "ok"}
    rec = read_json(run / "hf/step_10.prov.json")
    assert rec["output"]["kind"] == "dir" and rec["output"]["files"] >= 3 and rec["deterministic"] is False
    assert any(i["path"].endswith("shards/index.json") for i in rec["inputs"])


def test_flipped_weight_byte_is_tampered_and_refused_by_eval_and_analysis(run, tiny_data, capsys):  # noqa: F811
    ckpt = run / "hf/step_10"
    flip(ckpt / "model.safetensors", weight_offset(ckpt / "model.safetensors"))
    assert "hf/step_10 sha256" in one_detail(run, "hf/step_10")
    assert audit_main(["audit", "verify", str(run), "--out", str(run.parent / "a.md")]) == 1
    capsys.readouterr()
    shards = str(tiny_data / "shards")
    for argv in (["eval", "ppl", "--checkpoint", str(ckpt), "--shards", shards, "--tokens", "64", "--device", "cpu"],
                 ["analyze", "traces", "--checkpoint", str(ckpt), "--shards", shards, "--tokens", "64",
                  "--seq-len", "32", "--device", "cpu", "--out", str(run.parent / "t.npz")]):
        assert cli_main(argv) == 2
        [line] = capsys.readouterr().err.strip().splitlines()
        assert f"checkpoint {ckpt} was modified or corrupted after training wrote it: sha256" in line
    assert not (run.parent / "t.npz").exists()


def test_flipped_header_byte_is_tampered_and_a_one_line_load_error(run, tmp_path):
    from pathmoe.model.export import load_export

    ckpt = run / "hf/step_5"
    flip(ckpt / "model.safetensors", 20)  # inside the JSON header
    assert "hf/step_5 sha256" in one_detail(run, "hf/step_5")
    with pytest.raises(ValueError, match="was modified or corrupted"):
        load_export(ckpt)
    loose = tmp_path / "loose"  # a stand-alone copy has no record: the damaged header itself is reported
    shutil.copytree(ckpt, loose)
    with pytest.raises(ValueError, match=rf"checkpoint {loose} cannot be loaded \(\w+") as err:
        load_export(loose)
    assert "\n" not in str(err.value)


def test_an_export_without_its_record_is_flagged_and_refused(run):
    from pathmoe.model.export import load_export

    (run / "hf/step_10.prov.json").unlink()
    assert "has no hash record" in one_detail(run, "hf/step_10")
    with pytest.raises(ValueError, match="no hash record step_10.prov.json"):
        load_export(run / "hf/step_10")


def test_truncated_or_flipped_shard_is_tampered(tiny_data, tmp_path, monkeypatch):  # noqa: F811
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    (data / "dataset_config.json").write_text(json.dumps(DATASET))
    monkeypatch.chdir(tmp_path)
    assert audit_main(["audit", "record", "--deterministic", "--inputs", "data/dataset_config.json",
                       "data/raw/train.jsonl", "data/raw/val.jsonl", "data/tokenizer", "--outputs",
                       "data/shards/index.json", "--", "pathmoe", "data", "tokenize", "--dataset-config",
                       "data/dataset_config.json", "--out", "data"]) == 0
    assert statuses(tmp_path) == {"data/shards/index.json": "ok"}
    shard = data / "shards/train_00000.bin"
    original = shard.read_bytes()
    shard.write_bytes(original[:-64])
    line = one_detail(tmp_path, "data/shards/index.json")
    assert line == f"shard train_00000.bin: {len(original) - 64} bytes, index.json says {len(original)} (truncated or padded)"
    shard.write_bytes(bytes([original[0] ^ 1]) + original[1:])
    assert one_detail(tmp_path, "data/shards/index.json").startswith("shard train_00000.bin: sha256 ")
    shard.write_bytes(original)
    assert statuses(tmp_path) == {"data/shards/index.json": "ok"}


def test_missing_or_inconsistent_markers_stop_training(run):
    """Deleting complete.json of an interrupted run stops it with one line naming the run directory
    and `--restart`, checkpoints untouched; `--restart` then trains from step 0."""
    from pathmoe.train import train
    from pathmoe.train.integrity import check_training_state

    (run / "train_summary.json").unlink()  # interrupted: not finished
    marker = run / "ds_ckpt/complete.json"
    good = marker.read_text()
    cases = {
        "missing": lambda: marker.unlink(),
        "unreadable": lambda: marker.write_text("{not json"),
        "lists an absent tag": lambda: marker.write_text(json.dumps({"tags": ["step_5", "step_99"]})),
        "older than a saved tag": lambda: marker.write_text(json.dumps({"tags": []})),
        "no state_hash": lambda: (run / "state_hash").rename(run / "state_hash.bak"),
    }
    for name, breakage in cases.items():
        breakage()
        with pytest.raises(ValueError, match=rf"^{run}: .*--restart") as err:
            check_training_state(run)
        assert "\n" not in str(err.value), name
        marker.write_text(good)
        if (run / "state_hash.bak").exists():
            (run / "state_hash.bak").rename(run / "state_hash")
    check_training_state(run)

    marker.unlink()
    before = sorted(p.name for p in (run / "ds_ckpt").iterdir())
    with pytest.raises(ValueError, match=rf"{run}: DeepSpeed checkpoints \['step_5'\] exist but .*complete.json is "
                                         rf"missing; rerun with `pathmoe train --run-config .* --restart`"):
        train(run / "train_config.json")
    assert sorted(p.name for p in (run / "ds_ckpt").iterdir()) == before  # nothing discarded
    summary = train(run / "train_config.json", restart=True)
    assert summary["resumed_from"] == 0 and summary["steps"] == 10
    assert statuses(run) == {"hf/step_5": "ok", "hf/step_10": "ok", "ds_ckpt/step_5": "ok"}


def test_resume_refuses_a_corrupted_checkpoint(run):
    from pathmoe.train import train

    (run / "train_summary.json").unlink()
    tag_file = sorted(p for p in (run / "ds_ckpt/step_5").rglob("*") if p.is_file())[0]
    flip(tag_file, tag_file.stat().st_size // 2)
    with pytest.raises(ValueError, match=rf"{run}: DeepSpeed checkpoint step_5 does not match its record: sha256"):
        train(run / "train_config.json")
