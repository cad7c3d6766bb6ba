"""Reports: every table and figure of the paper from tidy records, beside the paper's numbers.

Entry points (the Snakemake report rules call them through `pathmoe report ...`):
`parse_report_spec`, `render_table`, `render_figure`, `write_document`, `load_reference`,
`compare_with_paper`. See docs/reports.md.
"""

from pathmoe.report.aggregate import load_records
from pathmoe.report.document import write_document
from pathmoe.report.figures import render_figure
from pathmoe.report.reference import Comparison, compare_with_paper, load_reference
from pathmoe.report.spec import FIGURES, TABLES, ReportSpec, load_schema, parse_report_spec
from pathmoe.report.tables import TABLES_WITH_REFERENCE, render_table

__all__ = ["Comparison", "FIGURES", "ReportSpec", "TABLES", "TABLES_WITH_REFERENCE", "compare_with_paper",
           "load_records", "load_reference", "load_schema", "parse_report_spec", "render_figure",
           "render_table", "write_document"]
