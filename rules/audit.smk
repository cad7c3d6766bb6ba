# Reproducibility audit of everything this experiment produced (provenance records beside each
# artifact): `snakemake audit` after `snakemake all`.

localrules: audit


rule audit:
    """Verify every artifact against its provenance record, re-execute the deterministic stages
    and compare the tables with the paper's numbers."""
    input:
        rules.all.input,
    output:
        f"{OUT}/audit/audit.md",
    shell:
        "pathmoe audit verify " + OUT + " " + REPORTS + " --reexec --out {output}"
