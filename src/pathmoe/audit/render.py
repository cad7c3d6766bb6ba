"""Markdown audit reports: what a human reads; the JSON forms are what machines read."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pathmoe.audit.paper import CellCheck
from pathmoe.audit.verify import ArtifactResult, summarize


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _fmt(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def artifact_table(results: list[ArtifactResult], base: Path) -> list[str]:
    lines = ["| artifact | status | deterministic | details |", "|---|---|---|---|"]
    for r in results:
        rel = os.path.relpath(r.output, base)
        det = (r.record or {}).get("deterministic")
        notes = [*r.details, *(f"warning: {w}" for w in r.warnings)]
        status = f"**{r.status}**" if r.failed else r.status
        lines.append(f"| {_cell(rel)} | {status} | {'—' if det is None else det} | {_cell('; '.join(notes))} |")
    return lines


def paper_table(checks: list[CellCheck], tolerance: float, warnings: list[str]) -> list[str]:
    n_out = sum(not c.within for c in checks)
    lines = ["", f"## Paper comparison (tolerance {tolerance:g}: pp for accuracies, % relative otherwise)", "",
             f"{len(checks) - n_out}/{len(checks)} cells within tolerance.", ""]
    lines += [f"- warning: {w}" for w in warnings]
    if checks:
        lines += ["| table | row | column | reproduced | paper | diff | rel % | rule | within |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for c in checks:
            mark = "yes" if c.within else "**no**"
            lines.append(f"| {c.table} | {_cell(c.row)} | {c.col} | {_fmt(c.ours)} | {_fmt(c.paper)} | "
                         f"{_fmt(c.diff)} | {_fmt(c.rel_pct, 1)} | {c.rule} | {mark} |")
    return lines


def verify_markdown(base: Path, results: list[ArtifactResult], checks: list[CellCheck] | None = None,
                    tolerance: float | None = None, paper_warnings: list[str] | None = None,
                    title: str | None = None) -> str:
    """Report of one verify call; artifact paths are shown relative to `base`."""
    counts = ", ".join(f"{n} {s}" for s, n in summarize(results).items()) or "no records found"
    lines = [f"# Provenance audit of `{title or base}`", "", f"{len(results)} artifacts: {counts}.", ""]
    lines += artifact_table(results, base)
    if checks is not None and tolerance is not None:
        lines += paper_table(checks, tolerance, paper_warnings or [])
    return "\n".join(lines) + "\n"


def gather_markdown(report: dict[str, Any]) -> str:
    lines = ["# Cluster reproducibility audit", "",
             f"Verdict: {'**FAILED**' if report['failed'] else 'clean'}; "
             f"{len(report['directories'])} directories.", "", "## Directories", "",
             "| directory | artifacts | statuses |", "|---|---|---|"]
    for d in report["directories"]:
        counts = ", ".join(f"{n} {s}" for s, n in d["summary"].items()) or "no records"
        lines.append(f"| {_cell(d['dir'])} | {len(d['artifacts'])} | {counts} |")
    for d in report["directories"]:
        bad = [a for a in d["artifacts"] if a["status"] not in ("ok", "reexec-ok") or a["warnings"]]
        if bad:
            lines += ["", f"### Problems in `{d['dir']}`", "", "| artifact | status | details |", "|---|---|---|"]
            lines += [f"| {_cell(a['artifact'])} | {a['status']} | {_cell('; '.join(a['details'] + a['warnings']))} |"
                      for a in bad]
    lines += ["", "## Cross-directory consistency", ""]
    if not report["consistency"]:
        lines.append("Every computation seen in more than one directory produced identical outputs.")
    for g in report["consistency"]:
        verdict = f"**{g['verdict']}**" if g["verdict"] == "non-reproducible" else g["verdict"]
        lines += [f"- {verdict}: `{g['artifact']}` (config {str(g['config_sha256'])[:12]}, seed {g['seed']}, "
                  f"{g['num_inputs']} identical inputs)"]
        lines += [f"  - {v['sha256'][:12]} from `{v['dir']}` ({v['user']}@{v['host']}, {v['ended']})"
                  for v in g["variants"]]
    lines += ["", "## Environments seen", "", "| field | values (directories) |", "|---|---|"]
    for name, info in report["environment"].items():
        vals = "; ".join(f"{v} ({', '.join(ds)})" for v, ds in info["values"].items())
        lines.append(f"| {'**' + name + '** (differs)' if info['differs'] else name} | {_cell(vals)} |")
    return "\n".join(lines) + "\n"
