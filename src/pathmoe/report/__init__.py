"""Reports: every table and figure of the paper from tidy records, beside the paper's numbers.

Entry points (the Snakemake report rules call them through `pathmoe report ...`):
`parse_report_spec`, `render_table`, `render_figure`, `write_document`, `load_reference`,
`compare_with_paper`. See docs/reports.md. Names resolve lazily: validating a config (every
Snakemake start) needs only the spec, not pandas, scipy and matplotlib.
"""

from importlib import import_module

_EXPORTS = {
    "load_records": "aggregate", "write_document": "document", "render_figure": "figures",
    "Comparison": "reference", "compare_with_paper": "reference", "load_reference": "reference",
    "FIGURES": "spec", "TABLES": "spec", "TABLES_WITH_REFERENCE": "spec", "ReportSpec": "spec",
    "load_schema": "spec", "parse_report_spec": "spec", "render_table": "tables",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pathmoe.report' has no attribute {name!r}")
    return getattr(import_module(f"pathmoe.report.{_EXPORTS[name]}"), name)
