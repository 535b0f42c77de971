"""Snakemake adapter: runs.csv -> the critical-difference diagram of the students (gafkd.report.figures)."""
import gafkd_src  # noqa: F401  (must come first)
from gafkd.report.figures import write_critical_difference
from gafkd.logs import logged

with logged(snakemake.log[0]):
    write_critical_difference(snakemake.input.runs, snakemake.output[0], snakemake.params.metric)
