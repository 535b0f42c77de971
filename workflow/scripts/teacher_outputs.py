"""Snakemake adapter: a teacher's logits for every window (gafkd.teacher_outputs)."""
import gafkd_src  # noqa: F401  (must come first)
from gafkd.devices import job_device
from gafkd.logs import logged
from gafkd.teacher_outputs import write_teacher_outputs

with logged(snakemake.log[0]), job_device(snakemake.config, snakemake.threads) as claim:
    write_teacher_outputs(snakemake.input.model, snakemake.input.windows,
                          snakemake.input.get("images"), snakemake.output[0], claim.device)
