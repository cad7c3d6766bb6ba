"""The cluster commands the README, the Snakefile header and docs/slurm.md print work verbatim.

Each `snakemake ... --profile slurm ...` command is run exactly as printed, from the repository
root, as a dry run (`-n` appended, the only change: nothing is submitted). Snakemake 9's
`--configfile` takes several values, so a target printed after it would be read as a config file
and the command would fail here. The profile's default experiment is the paper (0.9B + 16B).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "Snakefile", "docs/slurm.md")


def printed_cluster_commands() -> list[tuple[str, str]]:
    """(file, command) of every `snakemake ... --profile slurm` command in DOCS (code lines, inline code)."""
    found = []
    for name in DOCS:
        for line in (ROOT / name).read_text().splitlines():
            line = line.lstrip("#").strip()
            candidates = re.findall(r"`(snakemake [^`]+)`", line) or ([line] if line.startswith("snakemake ") else [])
            for cmd in candidates:
                cmd = re.split(r"\s{2,}|\s+#", cmd)[0].strip()  # a trailing comment or description
                if "--profile slurm" in cmd:
                    found.append((name, cmd))
    return found


def distinct_commands() -> list[str]:
    return sorted({cmd for _, cmd in printed_cluster_commands()})


def test_docs_print_cluster_commands():
    files = {name for name, _ in printed_cluster_commands()}
    assert files == set(DOCS), files
    assert ("README.md", "snakemake --profile slurm all") in printed_cluster_commands()


@pytest.mark.parametrize("cmd", distinct_commands())
def test_printed_cluster_command_runs_verbatim(cmd):
    res = subprocess.run(f"{cmd} -n", shell=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
    out = res.stdout + res.stderr
    where = [name for name, c in printed_cluster_commands() if c == cmd]
    assert res.returncode == 0, f"{where}: {cmd}\n{out[-3000:]}"
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", out, re.M)}
    assert counts.get("train", 0) >= 1, out[-2000:]
    if "--configfile" not in cmd and "results/" not in cmd and "reports/" not in cmd:
        # the profile's own experiment: the whole paper, the 16B runs of Table 2 included
        assert counts["train"] == 28 and counts["eval"] == 29 and "run=indep_16b_s0" in out, counts


def test_paper_dag_sbatch_job_count():
    """The jobs `snakemake --profile slurm all` submits with sbatch: everything but the local rules,
    each group job (a dataset's data jobs; up to 8 trace analyses) counting once. docs/slurm.md
    records the count: 94 before local report rules and groups, 64 now."""
    res = subprocess.run("snakemake --profile slurm all -n", shell=True, cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout + res.stderr
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", out, re.M)}
    local = set()
    for smk in (ROOT / "rules").glob("*.smk"):
        for names in re.findall(r"^localrules:\s*(.+)$", smk.read_text(), re.M):
            local |= {n.strip() for n in names.split(",")}
    assert {"table_with_reference", "figure", "document", "collect_records", "run_config"} <= local
    grouped = {"fetch_documents", "build_tokenizer", "tokenize", "analyze_traces"}
    groups = re.findall(r"Group job (\w+)", out)
    assert sorted(groups) == ["data", "data", "trace_analyses"], groups
    sbatch = sum(n for rule, n in counts.items() if rule not in local | grouped | {"all", "total"}) + len(groups)
    assert counts["train"] == 28 and counts["eval"] == 29
    assert sbatch == 64, counts
