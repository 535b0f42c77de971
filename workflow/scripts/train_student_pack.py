"""Snakemake adapter: a pack of student runs trained together on one device slot
(gafkd.students.train_pack_from_files; member k's files are named m<k>_<name>)."""
import gafkd_src  # noqa: F401  (must come first)

from gafkd.devices import job_device
from gafkd.logs import logged
from gafkd.students import train_pack_from_files

with logged(snakemake.log[0]), job_device(snakemake.config, snakemake.threads) as claim:
    train_pack_from_files(dict(snakemake.input.items()), snakemake.params.settings,
                          dict(snakemake.output.items()), device=claim.device, claim=claim.description)
