"""Snakemake adapter: a pack of student runs trained together on one device slot
(gafkd.distill.students.train_pack_from_files; member k's files are named m<k>_<name>)."""
import gafkd_src  # noqa: F401  (must come first)

from gafkd.train.devices import job_device
from gafkd.logs import logged
from gafkd.distill.students import train_pack_from_files

gpus = snakemake.resources.get("gpu")      # 0 where --resources gpu=0 scaled the request down
with logged(snakemake.log[0]), job_device(snakemake.config, snakemake.threads, gpus) as claim:
    train_pack_from_files(dict(snakemake.input.items()), snakemake.params.settings,
                          dict(snakemake.output.items()), device=claim.device, claim=claim.description)
