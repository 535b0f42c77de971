"""Snakemake adapter: every metrics.json -> runs.csv, summary.csv, comparisons.csv, tables
(gafkd.report.reporting)."""
import gafkd_src  # noqa: F401  (must come first)
from gafkd.logs import logged
from gafkd.report.reporting import write_report_tables

with logged(snakemake.log[0]):
    options = snakemake.params.options
    write_report_tables(list(snakemake.input.metrics), dict(snakemake.output.items()),
                        snakemake.params.teacher_archs, snakemake.params.alphas,
                        snakemake.params.expected, options["metric"], options["decimals"], options["rope"],
                        options["min_test_windows"], options["reference"], options.get("headline"),
                        options["alpha"])
