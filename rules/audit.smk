# Reproducibility audit of everything this experiment produced (provenance records beside each
# artifact): `snakemake audit` after `snakemake all`.

localrules: audit


rule audit:
    """Verify every artifact against its provenance record and re-execute the deterministic jobs,
    except those of the config's `audit.reexec_skip_stages` (the paper configs skip `data`). No
    paper comparison: run `pathmoe audit verify --paper-tolerance X` for that (docs/audit.md).
    The markdown report is the rule's log, which Snakemake keeps when the audit fails (exit 1)
    and deletes the failed job's output, the JSON report."""
    input:
        rules.all.input,
    output:
        f"{OUT}/audit/audit.json",
    log:
        f"{OUT}/audit/audit.md",
    params:
        dirs=[OUT, REPORTS],
        skip=[arg for stage in EXP.audit["reexec_skip_stages"] for arg in ("--reexec-skip-stage", stage)],
    shell:
        "pathmoe audit verify {params.dirs:q} --reexec {params.skip:q} --out {log:q} --json {output:q}"
