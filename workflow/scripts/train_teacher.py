"""Snakemake adapter: one teacher run on its own device slot (gafkd.distill.teachers.train_teacher)."""
import gafkd_src  # noqa: F401  (must come first)
from pathlib import Path

from gafkd.train.devices import job_device
from gafkd.logs import logged
from gafkd.distill.teachers import train_teacher

# Device slots come from the config, not params: where a job runs never reruns it. Its torch
# threads (devices.threads) are also in params: they change the numbers.
gpus = snakemake.resources.get("gpu")      # 0 where --resources gpu=0 scaled the request down
with logged(snakemake.log[0]), job_device(snakemake.config, snakemake.threads, gpus) as claim:
    train_teacher(
        snakemake.input.windows, snakemake.input.get("images"), snakemake.params.settings,
        outputs=dict(snakemake.output.items()),
        resume_path=Path(snakemake.output.model).with_name("resume.pt"),
        device=claim.device, claim=claim.description,
    )
