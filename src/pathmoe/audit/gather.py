"""Cluster-wide audit: verify many run directories and compare them with each other.

Two records describe the same computation when they have the same output path (relative to the
job's working directory), config hash, seed and input hashes. If such records from different
directories (users, hosts) recorded different output hashes, the stage is non-reproducible,
unless any of them is marked non-deterministic (then the difference is expected and only listed).
The environment summary shows which code versions, package versions and hardware produced what,
so a non-reproducible artifact can be traced to the difference that caused it.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

from pathmoe.audit.hashing import HashCache
from pathmoe.audit.verify import ArtifactResult, summarize, verify_dir

NON_REPRODUCIBLE, NON_DETERMINISTIC = "non-reproducible", "non-deterministic"


def computation_key(rec: dict[str, Any]) -> tuple:
    """What must be equal for two records to promise equal outputs."""
    inputs = tuple(sorted((i["path"], i["sha256"]) for i in rec.get("inputs", [])))
    return (rec["output"]["path"], (rec.get("config") or {}).get("sha256"), rec.get("seed"), inputs)


def _describe(rec: dict[str, Any], directory: str) -> dict[str, Any]:
    return {"dir": directory, "host": rec["hardware"].get("hostname"), "user": rec.get("user"),
            "ended": rec.get("ended"), "sha256": rec["output"]["sha256"]}


def consistency(per_dir: dict[str, list[ArtifactResult]]) -> list[dict[str, Any]]:
    """Groups of records of one computation whose recorded outputs differ across directories."""
    groups: dict[tuple, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for directory, results in per_dir.items():
        for res in results:
            if res.record is not None:
                groups[computation_key(res.record)].append((directory, res.record))
    flagged = []
    for key, members in sorted(groups.items(), key=lambda kv: kv[0][0]):
        hashes = {rec["output"]["sha256"] for _, rec in members}
        if len(hashes) < 2:
            continue
        deterministic = all(rec.get("deterministic") for _, rec in members)
        flagged.append({
            "artifact": key[0], "config_sha256": key[1], "seed": key[2], "num_inputs": len(key[3]),
            "verdict": NON_REPRODUCIBLE if deterministic else NON_DETERMINISTIC,
            "variants": [_describe(rec, d) for d, rec in members],
        })
    return flagged


def _env_fields(rec: dict[str, Any]) -> dict[str, str]:
    code = rec.get("code") or {}
    commit = (code.get("commit") or "no-git")[:12] + ("+dirty" if code.get("dirty") else "")
    hw = rec.get("hardware") or {}
    fields = {"code": f"{code.get('version')} @ {commit}", "host": str(hw.get("hostname")),
              "cpu": f"{hw.get('cpu_model')} x{hw.get('cpu_count')}",
              "gpus": ", ".join(hw.get("gpus") or []) or "none", "user": str(rec.get("user"))}
    for pkg, ver in (rec.get("packages") or {}).items():
        fields[f"package {pkg}"] = str(ver)
    return fields


def environment_summary(per_dir: dict[str, list[ArtifactResult]]) -> dict[str, dict[str, Any]]:
    """field -> {"values": {value: [dirs]}, "differs": bool} over every record seen."""
    seen: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for directory, results in per_dir.items():
        for res in results:
            if res.record is not None:
                for name, value in _env_fields(res.record).items():
                    seen[name][value].add(directory)
    return {name: {"values": {v: sorted(d) for v, d in sorted(vals.items())}, "differs": len(vals) > 1}
            for name, vals in seen.items()}


def gather(directories: Sequence[str | os.PathLike], reexec: bool = False,
           allow_missing_inputs: bool = False, trust: bool = False) -> dict[str, Any]:
    """Verify every directory, cross-check them, summarise environments; JSON-ready dict.

    `failed` is true when any artifact fails verification or any computation is non-reproducible.
    With `reexec`, jobs of directories the caller does not own are refused unless `trust`.
    """
    if not directories:
        raise ValueError("gather: at least one run directory is required")
    cache = HashCache()
    per_dir = {str(d): verify_dir(d, reexec=reexec, allow_missing_inputs=allow_missing_inputs, cache=cache,
                                  trust=trust)
               for d in directories}
    flagged = consistency(per_dir)
    dirs = [{"dir": d, "summary": summarize(rs), "artifacts": [r.to_json(Path(d)) for r in rs]}
            for d, rs in per_dir.items()]
    failed = any(r.failed for rs in per_dir.values() for r in rs) or any(
        g["verdict"] == NON_REPRODUCIBLE for g in flagged)
    return {"directories": dirs, "consistency": flagged, "environment": environment_summary(per_dir),
            "failed": failed}
