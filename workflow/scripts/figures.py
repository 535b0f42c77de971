"""Snakemake adapter: runs.csv -> the report's figures of one dataset (gafkd.report.figures)."""
import gafkd_src  # noqa: F401  (must come first)
from gafkd.report.figures import write_figures
from gafkd.logs import logged

with logged(snakemake.log[0]):
    write_figures(snakemake.input.runs, snakemake.wildcards.dataset, dict(snakemake.output.items()),
                  snakemake.params.options["metric"])
