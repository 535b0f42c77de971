"""Snakemake adapter: a dataset's public archive -> its raw folder (gafkd.data.download.download_raw)."""
import gafkd_src  # noqa: F401  (must come first)
import logging
import sys

from gafkd.data.download import download_raw
from gafkd.logs import logged

with logged(snakemake.log[0]):
    # the download's progress (size, rate) also on the terminal: the job can take minutes
    logging.getLogger().addHandler(logging.StreamHandler(sys.stderr))
    download_raw(snakemake.output[0], **snakemake.params.download)
