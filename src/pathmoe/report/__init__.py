"""Reports: every table and figure of the paper from tidy records, beside the paper's numbers.

Entry points (the Snakemake report rules call them through `pathmoe report ...`):
`parse_report_spec`, `render_table`, `render_figure`, `write_document`, `load_reference`,
`compare_with_paper`. See docs/reports.md. Names resolve lazily: validating a config (every
Snakemake start) needs only the spec, not pandas, scipy and matplotlib.
"""

from pathmoe.lazy import lazy_exports

_EXPORTS = {
    "load_records": "aggregate", "write_document": "document", "render_figure": "figures",
    "Comparison": "reference", "compare_with_paper": "reference", "load_reference": "reference",
    "FIGURES": "spec", "TABLES": "spec", "TABLES_WITH_REFERENCE": "spec", "ReportSpec": "spec",
    "load_schema": "spec", "parse_report_spec": "spec", "render_table": "tables",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
