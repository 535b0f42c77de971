"""Snakemake adapter: one teacher run on its own device slot (gafkd.distill.teachers.train_teacher)."""
import gafkd_src  # noqa: F401  (must come first)
from pathlib import Path

from gpu_job import gpu_job

from gafkd.distill.teachers import train_teacher

with gpu_job(snakemake) as claim:
    train_teacher(
        snakemake.input.windows, snakemake.input.get("images"), snakemake.params.settings,
        outputs=dict(snakemake.output.items()),
        resume_path=Path(snakemake.output.model).with_name("resume.pt"),
        device=claim.device, claim=claim.description,
    )
