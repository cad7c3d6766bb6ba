"""Hub revisions pinned by a lock file beside the config: resolved once, downloaded exactly, audited.

No network: `pathmoe.hub.resolve_commit` (the one function that asks the hub) is replaced by a
fake whose branches can move, and the hub's dataset and tokenizer are local stand-ins served
through the real `datasets.load_dataset` / `AutoTokenizer.from_pretrained` under hub names.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pathmoe import hub
from pathmoe.audit.provenance import record_provenance, utc_now
from pathmoe.audit.verify import STALE, verify_dir
from pathmoe.config import ConfigError, load_experiment
from pathmoe.data import dataset_identity, prepare_dataset
from pathmoe.data.builtin_corpus import generate_documents
from pathmoe.hub import RevisionLock, lock_path_for, lock_text, read_lock

ROOT = Path(__file__).resolve().parents[1]
C1, C2, T1 = "1" * 40, "2" * 40, "a" * 40


class FakeHub:
    """Branch heads of the fake hub, and every revision a download asked for."""

    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.heads = {("dataset", "org/corpus", "main"): C1, ("model", "org/tok", None): T1}
        self.resolved: list[tuple] = []
        self.downloads: list[tuple[str, str]] = []
        self.corpus = tmp / "hub_corpus"
        self.corpus.mkdir()
        (self.corpus / "train.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in generate_documents(120, 0)))
        from pathmoe.data.tokenizer import _wrap, train_bpe

        self.tok_dir = tmp / "hub_tok"
        _wrap(train_bpe(generate_documents(200, 1), 300)).save_pretrained(str(self.tok_dir))
        import datasets
        import transformers

        real_load, real_tok = datasets.load_dataset, transformers.AutoTokenizer.from_pretrained

        def load_dataset(path, *args, revision=None, **kw):
            if path != "org/corpus":
                return real_load(path, *args, revision=revision, **kw)
            self.downloads.append(("org/corpus", revision))
            return real_load(str(self.corpus), *args, **kw)

        def from_pretrained(name, *args, revision=None, **kw):
            if name != "org/tok":
                return real_tok(name, *args, revision=revision, **kw)
            self.downloads.append(("org/tok", revision))
            return real_tok(str(self.tok_dir), *args, **kw)

        def resolve(kind, repo, revision):
            self.resolved.append((kind, repo, revision))
            return self.heads[(kind, repo, revision)]

        monkeypatch.setattr(datasets, "load_dataset", load_dataset)
        monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", from_pretrained)
        monkeypatch.setattr(hub, "resolve_commit", resolve)


DATASET = {"source": {"kind": "hf", "path": "org/corpus", "revision": "main", "text_field": "text"},
           "tokenizer": {"kind": "hf", "name": "org/tok"}, "validation_documents": 20, "num_workers": 1}


def test_lock_resolves_each_revision_once_and_writes_a_deterministic_file(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(hub, "resolve_commit", lambda k, r, v: calls.append((k, r, v)) or C1)
    lock = RevisionLock(tmp_path / "exp.lock.yaml")
    assert lock.pin("model", "org/b", None) == C1 and lock.pin("dataset", "org/a", "v1.0") == C1
    assert lock.pin("dataset", "org/a", "v1.0") == C1 and calls == [("model", "org/b", None), ("dataset", "org/a", "v1.0")]
    assert lock.pin("dataset", "org/a", C2) == C2 and len(calls) == 2  # a commit hash pins itself
    text = (tmp_path / "exp.lock.yaml").read_text()
    assert text == lock_text(list(reversed(read_lock(tmp_path / "exp.lock.yaml"))))  # order-independent bytes
    assert yaml.safe_load(text)["pins"][0] == {"kind": "dataset", "repo": "org/a", "revision": C2, "commit": C2}
    assert RevisionLock(tmp_path / "exp.lock.yaml").pinned("model", "org/b", None) == C1  # another process reads it
    assert lock_path_for("configs/paper-0.9b.yaml") == Path("configs/paper-0.9b.lock.yaml")
    (tmp_path / "bad.lock.yaml").write_text("pins: [{kind: dataset, repo: x, revision: null, commit: abc}]\n")
    with pytest.raises(ValueError, match=r"pins\[0\] must be .*40 hex digits"):
        RevisionLock(tmp_path / "bad.lock.yaml").pin("dataset", "x", None)


def test_downloads_use_the_locked_commit_record_it_and_audit_flags_a_changed_revision(tmp_path, monkeypatch):
    fake = FakeHub(tmp_path, monkeypatch)
    lock_file = tmp_path / "exp.lock.yaml"
    first = tmp_path / "user1" / "data"
    index = prepare_dataset(DATASET, first, RevisionLock(lock_file))
    pins = [{"kind": "dataset", "repo": "org/corpus", "revision": "main", "commit": C1},
            {"kind": "model", "repo": "org/tok", "revision": None, "commit": T1}]
    assert read_lock(lock_file) == pins and fake.downloads == [("org/corpus", C1), ("org/tok", T1)]
    manifest = json.loads((first / "raw/manifest.json").read_text())
    assert manifest["hub"] == pins[:1] and manifest["revision_lock"] == str(lock_file)
    assert json.loads((first / "tokenizer/pathmoe_build.json").read_text())["hub"] == pins[1:]
    assert index["hub"] == pins  # part of the dataset identity

    fake.heads[("dataset", "org/corpus", "main")] = C2  # the branch moves on the hub
    prepare_dataset(DATASET, first, RevisionLock(lock_file))  # current: nothing resolved or downloaded again
    second = tmp_path / "user2" / "data"  # another user of the same config and lock
    prepare_dataset(DATASET, second, RevisionLock(lock_file))
    assert len(fake.resolved) == 2 and fake.downloads[2:] == [("org/corpus", C1), ("org/tok", T1)]
    assert dataset_identity(second) == dataset_identity(first)

    record_provenance([first / "raw/manifest.json"], [], ["pathmoe", "data", "fetch"], utc_now(), utc_now(),
                      deterministic=True, cwd=tmp_path)
    assert [r.status for r in verify_dir(first)] == ["ok"]
    lock_file.write_text(lock_text([{**pins[0], "commit": C2}, pins[1]]))  # someone re-pins the dataset
    [res] = verify_dir(first)
    assert res.status == STALE and "revision changed, downloaded at commit 111111111111" in res.details[0]
    assert "now pins 222222222222" in res.details[0]
    old_id = dataset_identity(first)
    prepare_dataset(DATASET, first, RevisionLock(lock_file))  # the next download fetches the new pin
    assert fake.downloads[-1] == ("org/corpus", C2) and dataset_identity(first) != old_id


def test_config_lock_beside_the_config_checked_up_front_and_passed_to_data_jobs(tmp_path):
    cfg = yaml.safe_load((ROOT / "configs/paper-0.9b.yaml").read_text())
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    exp = load_experiment(path)
    assert exp.revision_lock == tmp_path / "exp.lock.yaml"
    dataset = next(iter(exp.datasets))
    assert exp.revision_lock_args(dataset) == ["--revision-lock", str(tmp_path / "exp.lock.yaml")]
    (tmp_path / "exp.lock.yaml").write_text("pins: 3\n")
    with pytest.raises(ConfigError, match="exp.lock.yaml': expected a mapping with a 'pins' list; fix it or delete it"):
        load_experiment(path)
    res = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--forceall",
                          f"results/paper-0.9b/data/{dataset}/raw/manifest.json", "--configfile", "configs/paper-0.9b.yaml"],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"--revision-lock {ROOT / 'configs/paper-0.9b.lock.yaml'}" in res.stdout + res.stderr


def test_resolve_failure_is_one_line_naming_repo_and_revision(monkeypatch):
    import huggingface_hub

    def offline(self, repo, revision=None):
        raise OSError("We couldn't connect to 'https://huggingface.co'.\nCheck your connection.")

    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", offline)
    with pytest.raises(ValueError) as err:
        hub.resolve_commit("dataset", "org/corpus", "main")
    assert str(err.value) == ("hub dataset 'org/corpus' at revision 'main' could not be resolved to a commit "
                              "(We couldn't connect to 'https://huggingface.co'.)")
