"""Snakemake adapter: a pack of student runs trained together on one device slot
(gafkd.distill.students.train_pack_from_files; member k's files are named m<k>_<name>)."""
import gafkd_src  # noqa: F401  (must come first)
from gpu_job import gpu_job

from gafkd.distill.students import train_pack_from_files

with gpu_job(snakemake) as claim:
    train_pack_from_files(dict(snakemake.input.items()), snakemake.params.settings,
                          dict(snakemake.output.items()), device=claim.device, claim=claim.description)
