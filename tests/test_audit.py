"""Provenance records, verify (tamper/missing/stale/reexec), paper comparison and cluster gather."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from pathmoe.audit import config_hash, gather, hash_path, load_record, record_provenance, verify_dir
from pathmoe.audit.commands import main
from pathmoe.audit.paper import check_cell, compare_tables
from pathmoe.io import sha256_file

UPPER = "import pathlib; pathlib.Path('out/up.txt').write_text(pathlib.Path('in.txt').read_text().upper())"
RANDOM = "import os, pathlib; pathlib.Path('out/up.txt').write_bytes(os.urandom(16))"


def record(code: str, *extra: str, outputs: tuple[str, ...] = ("out/up.txt",)) -> int:
    return main(["audit", "record", "--inputs", "in.txt", "--outputs", *outputs, *extra,
                 "--", sys.executable, "-c", code])


def statuses(directory: Path, **kw) -> dict[str, str]:
    return {str(r.output.relative_to(directory)): r.status for r in verify_dir(directory, **kw)}


@pytest.fixture
def job(tmp_path, monkeypatch):
    """A directory with one input and one recorded deterministic output (cwd = that directory)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.txt").write_text("hello\n")
    (tmp_path / "out").mkdir()
    assert record(UPPER, "--deterministic", "--seed", "7") == 0
    return tmp_path


def test_record_contents(job):
    rec = load_record(job / "out" / "up.txt.prov.json")
    assert rec["output"] == {"path": "out/up.txt", "kind": "file", "sha256": sha256_file(job / "out/up.txt"),
                             "bytes": 6, "files": 1}
    assert rec["inputs"] == [{"path": "in.txt", "kind": "file", "sha256": sha256_file(job / "in.txt"),
                              "bytes": 6, "files": 1}]
    assert rec["seed"] == 7 and rec["deterministic"] is True and rec["config"] is None
    assert rec["command"] == {"argv": [sys.executable, "-c", UPPER], "cwd": job.as_posix()}
    assert set(rec["packages"]) == {"torch", "deepspeed", "transformers", "lm_eval", "snakemake", "numpy",
                                    "pathmoe", "python"}
    assert rec["packages"]["pathmoe"] is not None and rec["hardware"]["cpu_count"] >= 1
    assert {"commit", "dirty", "version"} <= set(rec["code"]) and rec["user"]
    assert datetime.fromisoformat(rec["started"]) <= datetime.fromisoformat(rec["ended"])


def test_verify_clean_then_tampered_missing_stale(job):
    assert statuses(job) == {"out/up.txt": "ok"}
    assert main(["audit", "verify", str(job), "--out", str(job / "report.md")]) == 0
    out = job / "out/up.txt"
    data = bytearray(out.read_bytes())
    data[0] ^= 1  # one flipped bit
    out.write_bytes(bytes(data))
    assert statuses(job) == {"out/up.txt": "tampered"}
    assert main(["audit", "verify", str(job), "--out", str(job / "report.md")]) == 1
    assert "**tampered**" in (job / "report.md").read_text()
    out.unlink()
    assert statuses(job) == {"out/up.txt": "missing"}
    (job / "out/up.txt.prov.json").write_text('{"schema": "pathmoe-provenance/1", "output": {}}')
    assert statuses(job) == {"out/up.txt": "tampered"}  # a damaged record vouches for nothing
    assert record(UPPER) == 0 and statuses(job) == {"out/up.txt": "ok"}
    (job / "in.txt").write_text("changed\n")
    assert statuses(job) == {"out/up.txt": "stale-input"}
    (job / "in.txt").unlink()
    assert statuses(job) == {"out/up.txt": "stale-input"}
    assert statuses(job, allow_missing_inputs=True) == {"out/up.txt": "ok"}


RECORDS_CSV = "run,variant,scale,dataset,seed,step,task,metric,value,stderr\na,v,s,d,0,10,t,acc,0.5,0.01\n"


def collect(*flags: str, out: str = "results/records.csv", runs: str = "runs/a") -> int:
    """Record a real deterministic stage command (`pathmoe eval collect`) in the cwd."""
    return main(["audit", "record", *flags, "--inputs", f"{runs}/eval/records.csv", "--outputs", out, "--",
                 "pathmoe", "eval", "collect", "--runs", runs, "--out", out])


@pytest.fixture
def collect_job(tmp_path, monkeypatch):
    """A directory holding one recorded `pathmoe eval collect` job (cwd = that directory)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs/a/eval").mkdir(parents=True)
    (tmp_path / "runs/a/eval/records.csv").write_text(RECORDS_CSV)
    assert collect("--deterministic") == 0
    return tmp_path


def plant(record_file: Path, argv: list[str]) -> None:
    rec = json.loads(record_file.read_text())
    rec["command"]["argv"] = argv
    record_file.write_text(json.dumps(rec))


def test_reexec_deterministic_and_mismatch(collect_job):
    job = collect_job
    assert statuses(job, reexec=True) == {"results/records.csv": "reexec-ok"}
    # a job that promised determinism but produced other bytes: re-running gives the real ones
    out = job / "results/records.csv"
    out.write_text(out.read_text().replace("0.5", "0.7"))
    argv = ["pathmoe", "eval", "collect", "--runs", "runs/a", "--out", "results/records.csv"]
    record_provenance(["results/records.csv"], ["runs/a/eval/records.csv"], argv, "a", "b", deterministic=True,
                      cwd=job)
    assert statuses(job, reexec=True) == {"results/records.csv": "reexec-mismatch"}
    assert main(["audit", "verify", str(job), "--reexec", "--json", str(job / "v.json"), "--out", "r.md"]) == 1
    assert json.loads((job / "v.json").read_text())["artifacts"][0]["status"] == "reexec-mismatch"
    assert collect() == 0  # honestly non-deterministic: not re-run, stays ok
    [res] = verify_dir(job, reexec=True)
    assert res.status == "ok" and "non-deterministic" in res.warnings[0]
    # a path option naming the original directory would write over the originals: not run, a warning
    absolute = str(job / "results/records.csv")
    assert main(["audit", "record", "--deterministic", "--inputs", "runs/a/eval/records.csv", "--outputs",
                 "results/records.csv", "--", "pathmoe", "eval", "collect", "--runs", "runs/a", "--out", absolute]) == 0
    [res] = verify_dir(job, reexec=True)
    assert res.status == "ok" and "outside the job's working directory" in res.warnings[0]


PLANTED = [
    ["sh", "-c", "touch {pwned}"],
    [sys.executable, "-c", "import pathlib; pathlib.Path('{pwned}').touch()"],
    ["pathmoe", "train", "--run-config", "x.json"],  # a pathmoe command, but not an allow-listed one
    ["pathmoe", "eval", "collect", "--runs", "runs/a", "--out", "results/records.csv", "--bogus", "{pwned}"],
    ["/tmp/evil/pathmoe-not", "eval", "collect"],
]


def test_planted_record_is_refused_and_nothing_runs(collect_job, tmp_path_factory):
    """A record naming anything but an allow-listed pathmoe stage command is `refused` (exit 1) by
    verify and gather, even with --trust, and its command never runs."""
    job = collect_job
    pwned = tmp_path_factory.mktemp("victim") / "pwned"
    for argv in PLANTED:
        plant(job / "results/records.csv.prov.json", [a.format(pwned=pwned) for a in argv])
        [res] = verify_dir(job, reexec=True)
        assert res.status == "refused" and res.details[0].startswith("refused: ") and "nothing was run" in res.details[0]
    assert main(["audit", "verify", str(job), "--reexec", "--trust", "--out", str(job / "r.md")]) == 1
    assert main(["audit", "gather", str(job), "--reexec", "--trust", "--out", str(job / "g.md")]) == 1
    assert "**refused**" in (job / "r.md").read_text() and "refused" in (job / "g.md").read_text()
    assert not pwned.exists()


def test_reexec_of_a_directory_the_caller_does_not_own_needs_trust(collect_job, monkeypatch):
    import pathmoe.audit.reexec as reexec

    job = collect_job
    monkeypatch.setattr(reexec, "current_uid", lambda: os.getuid() + 4242)  # as another user would
    [res] = verify_dir(job, reexec=True)
    assert res.status == "refused" and "pass --trust" in res.details[0]
    assert main(["audit", "verify", str(job), "--reexec", "--out", "r.md"]) == 1
    assert statuses(job, reexec=True, trust=True) == {"results/records.csv": "reexec-ok"}
    assert main(["audit", "verify", str(job), "--reexec", "--trust", "--out", "r.md"]) == 0
    assert gather([job], reexec=True)["failed"] and not gather([job], reexec=True, trust=True)["failed"]


def test_reexec_runs_our_cli_not_a_copied_module(collect_job):
    """The rebuilt command runs the auditor's pathmoe: an input named like our package, copied into
    the scratch directory, is not imported."""
    job = collect_job
    (job / "pathmoe").mkdir()
    (job / "pathmoe/__init__.py").write_text("raise SystemExit('shadowed')\n")
    argv = ["pathmoe", "eval", "collect", "--runs", "runs/a", "--out", "results/records.csv"]
    record_provenance(["results/records.csv"], ["runs/a/eval/records.csv", "pathmoe"], argv, "a", "b",
                      deterministic=True, cwd=job)
    assert statuses(job, reexec=True) == {"results/records.csv": "reexec-ok"}


def test_reexec_skip_stage(collect_job):
    """`--reexec-skip-stage eval` leaves a `pathmoe eval ...` job ok (with a warning), unre-run."""
    work = collect_job
    assert statuses(work, reexec=True, reexec_skip_stages=["report"]) == {"results/records.csv": "reexec-ok"}
    [res] = verify_dir(work, reexec=True, reexec_skip_stages=["eval"])
    assert res.status == "ok" and res.warnings == ["not re-executed: stage 'eval' skipped (--reexec-skip-stage)"]
    assert main(["audit", "verify", str(work), "--reexec", "--reexec-skip-stage", "eval", "--out", "a.md"]) == 0
    assert "skipped (--reexec-skip-stage)" in (work / "a.md").read_text()


def test_hardware_names_gpus_without_torch(tmp_path):
    """GPU names come from the driver (here a fake nvidia-smi), narrowed to CUDA_VISIBLE_DEVICES;
    recording never imports torch (a second per wrapped job)."""
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\ncat <<'EOF'\n"
                   "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1111-aaaa)\n"
                   "GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-2222-bbbb)\n"
                   "  MIG 3g.20gb     Device  0: (UUID: MIG-3333-cccc)\nEOF\n")
    smi.chmod(0o755)
    probe = ("import json, sys; from pathmoe.audit.environment import hardware; "
             "print(json.dumps([hardware()['gpus'], 'torch' in sys.modules]))")
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env["PATH"] = f"{tmp_path}{os.pathsep}{env['PATH']}"

    def gpus(visible: str | None) -> list[str]:
        run_env = env if visible is None else {**env, "CUDA_VISIBLE_DEVICES": visible}
        out = subprocess.run([sys.executable, "-c", probe], env=run_env, capture_output=True, text=True, check=True)
        names, torch_imported = json.loads(out.stdout)
        assert not torch_imported
        return names

    assert gpus(None) == ["NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB"]
    assert gpus("1") == ["NVIDIA A100-SXM4-40GB"]
    assert gpus("GPU-2222,0") == ["NVIDIA A100-SXM4-40GB", "NVIDIA H100 80GB HBM3"]
    assert gpus("MIG-3333") == ["NVIDIA A100-SXM4-40GB MIG 3g.20gb"]
    assert gpus("7,0") == [] and gpus("") == []  # as in CUDA, the list ends at an unknown device


def test_failing_command_writes_no_record_and_propagates_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.txt").write_text("x")
    code = "import pathlib, sys; pathlib.Path('half.txt').write_text('partial'); sys.exit(3)"
    assert main(["audit", "record", "--inputs", "in.txt", "--outputs", "half.txt", "--",
                 sys.executable, "-c", code]) == 3
    assert (tmp_path / "half.txt").read_text() == "partial"  # left as the command left it
    assert not list(tmp_path.rglob("*.prov.json"))
    # success without creating the declared output is an error, and records nothing either
    assert main(["audit", "record", "--outputs", "never.txt", "--", sys.executable, "-c", "pass"]) == 2
    assert not list(tmp_path.rglob("*.prov.json"))


def test_directory_output_relocation_and_config(tmp_path, monkeypatch):
    run = tmp_path / "site"
    (run / "cfg").mkdir(parents=True)
    (run / "in.txt").write_text("abc")
    (run / "cfg" / "run.json").write_text('{"seed": 3, "b": [1, 2], "a": {"y": 1, "x": 2}}')
    monkeypatch.chdir(run)
    code = ("import pathlib; d = pathlib.Path('tok'); (d / 'sub').mkdir(parents=True); "
            "(d / 'a.txt').write_text('A'); (d / 'sub' / 'b.txt').write_text('B')")
    assert main(["audit", "record", "--inputs", "in.txt", "--outputs", "tok/", "--config", "cfg/run.json",
                 "--deterministic", "--", sys.executable, "-c", code]) == 0
    rec = load_record(run / "tok.prov.json")
    assert rec["output"]["kind"] == "dir" and rec["output"]["files"] == 2 and rec["seed"] == 3
    sha = lambda b: hashlib.sha256(b).hexdigest()  # noqa: E731
    assert rec["output"]["sha256"] == sha(f"a.txt\0{sha(b'A')}\nsub/b.txt\0{sha(b'B')}\n".encode())
    assert rec["config"]["sha256"] == config_hash({"a": {"x": 2, "y": 1}, "seed": 3, "b": [1, 2]})
    assert [i["path"] for i in rec["inputs"]] == ["in.txt", "cfg/run.json"]
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(run, moved)
    shutil.rmtree(run)  # the original cwd is gone: relative inputs must resolve under the copy
    assert hash_path(moved / "tok")["sha256"] == rec["output"]["sha256"]
    assert statuses(moved) == {"tok": "ok"}
    (moved / "tok" / "sub" / "b.txt").write_text("C")
    assert statuses(moved) == {"tok": "tampered"}


def test_relocated_directory_reexecutes(collect_job, tmp_path_factory):
    moved = tmp_path_factory.mktemp("elsewhere") / "copy"
    shutil.copytree(collect_job, moved)
    shutil.rmtree(collect_job)  # relative inputs resolve under the copy
    assert statuses(moved, reexec=True) == {"results/records.csv": "reexec-ok"}


def test_library_record_provenance(tmp_path):
    (tmp_path / "o.bin").write_bytes(b"\x00\x01")
    [path] = record_provenance(["o.bin"], [], ["make"], datetime(2026, 1, 1), "2026-01-01T00:01:00+00:00",
                               cwd=tmp_path)
    assert path == tmp_path / "o.bin.prov.json"
    assert load_record(path)["started"] == "2026-01-01T00:00:00.000+00:00"
    with pytest.raises(FileNotFoundError, match="--inputs 'nope'"):
        record_provenance(["o.bin"], ["nope"], ["make"], "a", "b", cwd=tmp_path)


def _three_dirs(tmp_path, monkeypatch, code: str, *flags: str) -> list[Path]:
    dirs = []
    for name in ("alice", "bob"):
        d = tmp_path / name
        (d / "out").mkdir(parents=True)
        (d / "in.txt").write_text("same input\n")
        monkeypatch.chdir(d)
        assert record(code, *flags) == 0
        dirs.append(d)
    shutil.copytree(dirs[0], tmp_path / "alice-copy")
    return dirs + [tmp_path / "alice-copy"]


def test_gather_clean_and_non_reproducible(tmp_path, monkeypatch):
    alice, bob, copy = _three_dirs(tmp_path / "det", monkeypatch, UPPER, "--deterministic")
    report = gather([alice, bob, copy])
    assert not report["failed"] and report["consistency"] == []
    assert not report["environment"]["code"]["differs"]
    alice, bob, copy = _three_dirs(tmp_path / "rnd", monkeypatch, RANDOM, "--deterministic")
    assert not gather([alice, copy])["failed"]
    report = gather([alice, bob, copy])
    [group] = report["consistency"]
    assert report["failed"] and group["verdict"] == "non-reproducible" and group["artifact"] == "out/up.txt"
    assert {v["dir"] for v in group["variants"]} == {str(alice), str(bob), str(copy)}
    assert main(["audit", "gather", str(alice), str(bob), "--out", str(tmp_path / "a.md"),
                 "--json", str(tmp_path / "a.json")]) == 1
    assert "**non-reproducible**" in (tmp_path / "a.md").read_text()
    alice, bob, _ = _three_dirs(tmp_path / "nd", monkeypatch, RANDOM)  # declared non-deterministic
    report = gather([alice, bob])
    assert not report["failed"] and report["consistency"][0]["verdict"] == "non-deterministic"


def test_paper_tolerance_rule_and_tables(tmp_path):
    assert check_cell("t", "r", "arc_easy", 45.9, 45.0, 1.0).within  # 0.9 pp
    assert not check_cell("t", "r", "avg", 46.1, 45.0, 1.0).within  # 1.1 pp
    ppl = check_cell("t", "r", "val_ppl", 20.3, 20.0, 1.0)  # 1.5 % relative
    assert ppl.rule == "rel%" and ppl.rel_pct == pytest.approx(1.5) and not ppl.within
    assert check_cell("t", "r", "val_ppl", 20.3, 20.0, 2.0).within
    assert not check_cell("t", "r", "hellaswag", None, 40.0, 100.0).within
    tables = tmp_path / "reports" / "tables"
    tables.mkdir(parents=True)
    (tables / "table1.json").write_text(json.dumps({
        "table": "table1", "columns": ["arc_easy", "val_ppl"], "paper_labels": {"PathB4-MoE": "PathB4"},
        "rows": {"PathB4-MoE": {"arc_easy": 45.5, "val_ppl": 20.1}, "Extra": {"arc_easy": 1.0}},
        "paper": {"PathB4-MoE": {"arc_easy": 45.0, "val_ppl": 20.0}}}))
    checks, warnings = compare_tables(tmp_path, 1.0)
    assert warnings == [] and [(c.row, c.col, c.within) for c in checks] == [
        ("PathB4-MoE", "arc_easy", True), ("PathB4-MoE", "val_ppl", True)]
    assert checks[0].diff == pytest.approx(0.5)
    assert main(["audit", "verify", str(tmp_path), "--paper-tolerance", "1", "--out", str(tmp_path / "p.md"),
                 "--json", str(tmp_path / "p.json")]) == 0
    paper = json.loads((tmp_path / "p.json").read_text())["paper"]
    assert [(c["col"], c["rule"], c["within"]) for c in paper] == [("arc_easy", "pp", True), ("val_ppl", "rel%", True)]
    # without a "paper" field the reference is looked up by table name and paper row label
    (tables / "table6.json").write_text(json.dumps({"table": "table6", "columns": ["avg"], "rows": {"Mine": {"avg": 47.0}},
                                                    "paper_labels": {"Mine": "Indep"}}))
    ref = {"table6": {"Indep": {"avg": 47.53}}}
    checks, _ = compare_tables(tmp_path, 0.5, ref)
    table6 = [(c.row, c.paper, c.within) for c in checks if c.table == "table6"]
    assert table6 == [("Mine", 47.53, False)]
    (tables / "table6.json").unlink()
    assert main(["audit", "verify", str(tmp_path), "--paper-tolerance", "0.4", "--out", str(tmp_path / "p.md")]) == 1
    assert "| table1 | PathB4-MoE | arc_easy | 45.50 | 45.00 | 0.50 |" in (tmp_path / "p.md").read_text()


def test_bad_input_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["audit", "verify", str(tmp_path / "absent")]) == 2
    assert main(["audit", "record", "--inputs", "nope.txt", "--outputs", "x", "--", "true"]) == 2
    assert "--inputs 'nope.txt'" in capsys.readouterr().err
    assert main(["audit", "verify", str(tmp_path), "--paper-tolerance", "-1"]) == 2


def test_snakemake_style_wrap_two_dirs_and_implicit_config(tmp_path, monkeypatch):
    """The rules' form: `--inputs {input}` naming run_config.json, inputs in results/, output in reports/."""
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "results" / "runs" / "r0"
    (run / "eval").mkdir(parents=True)
    (run / "run_config.json").write_text('{"seed": 5, "run": "r0"}')
    (run / "eval" / "records.csv").write_text(RECORDS_CSV)
    assert main(["audit", "record", "--deterministic", "--inputs", "results/runs/r0/run_config.json",
                 "results/runs/r0/eval/records.csv", "--outputs", "reports/records.csv", "--",
                 "pathmoe", "eval", "collect", "--runs", "results/runs/r0", "--out", "reports/records.csv"]) == 0
    rec = load_record(tmp_path / "reports/records.csv.prov.json")
    assert rec["seed"] == 5 and rec["config"]["sha256"] == config_hash({"run": "r0", "seed": 5})
    results = verify_dir(["results", "reports"], reexec=True)
    assert [r.status for r in results] == ["reexec-ok"]
    assert main(["audit", "verify", "results", "reports", "--out", "a.md"]) == 0


def test_snakemake_directory_stamp_is_not_content(tmp_path):
    from pathmoe.audit.hashing import hash_path

    d = tmp_path / "tok"
    d.mkdir()
    (d / "tokenizer.json").write_text("{}")
    before = hash_path(d)["sha256"]
    (d / ".snakemake_timestamp").write_text("")
    assert hash_path(d)["sha256"] == before
