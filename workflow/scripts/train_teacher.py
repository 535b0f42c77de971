"""Snakemake adapter: one teacher run on its own device slot (gafkd.teachers.train_teacher)."""
import gafkd_src  # noqa: F401  (must come first)
from pathlib import Path

import torch

from gafkd.devices import claim_device
from gafkd.logs import logged
from gafkd.teachers import train_teacher

with logged(snakemake.log[0]) as log:
    devices = snakemake.config["devices"]  # not params: where a job runs never reruns it
    with claim_device(devices["jobs_per_gpu"], devices["lock_dir"]) as claim:
        log.info("device: %s", claim.description)
        torch.set_num_threads(snakemake.threads)
        train_teacher(
            snakemake.input.windows, snakemake.input.get("images"), snakemake.params.settings,
            outputs=dict(snakemake.output.items()),
            resume_path=Path(snakemake.output.model).with_name("resume.pt"),
            device=claim.device, claim=claim.description,
        )
