"""Snakemake adapter: raw files -> windows.h5 + summary (gafkd.data.windows.build_windows)."""
import gafkd_src  # noqa: F401  (must come first)
from gafkd.logs import logged
from gafkd.data.windows import build_windows

with logged(snakemake.log[0]):
    build_windows(snakemake.wildcards.dataset, snakemake.params.spec,
                  snakemake.output.h5, snakemake.output.summary)
