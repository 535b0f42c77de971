"""Snakemake adapter: windows.h5 -> image cache + gallery (gafkd.images)."""
import gafkd_src  # noqa: F401  (must come first)
from gafkd.images import build_images, plot_gallery
from gafkd.logs import logged

with logged(snakemake.log[0]):
    build_images(snakemake.input[0], snakemake.output.h5, method=snakemake.wildcards.encoding,
                 size=int(snakemake.wildcards.size), threads=snakemake.threads)
    plot_gallery(snakemake.input[0], snakemake.output.h5, snakemake.output.gallery)
