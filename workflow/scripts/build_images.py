"""Snakemake adapter: windows.h5 -> image cache (gafkd.images.cache) + gallery (gafkd.report.figures)."""
import gafkd_src  # noqa: F401  (must come first)
from gafkd.report.figures import plot_gallery
from gafkd.names import image_variant
from gafkd.images.cache import build_images
from gafkd.logs import logged

with logged(snakemake.log[0]):
    variant = image_variant(snakemake.wildcards.variant)
    build_images(snakemake.input[0], snakemake.output.h5, method=snakemake.wildcards.encoding,
                 size=int(snakemake.wildcards.size), threads=snakemake.threads, **variant)
    plot_gallery(snakemake.input[0], snakemake.output.h5, snakemake.output.gallery)
