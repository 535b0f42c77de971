"""Snakemake adapter: a teacher's logits for every window (gafkd.distill.teacher_outputs)."""
import gafkd_src  # noqa: F401  (must come first)
from gafkd.train.devices import job_device
from gafkd.logs import logged
from gafkd.distill.teacher_outputs import IDENTITY, write_teacher_outputs

gpus = snakemake.resources.get("gpu")      # 0 where --resources gpu=0 scaled the request down
with logged(snakemake.log[0]), job_device(snakemake.config, snakemake.threads, gpus) as claim:
    write_teacher_outputs(snakemake.input.model, snakemake.input.windows,
                          snakemake.input.get("images"), snakemake.output[0], claim.device,
                          expected={key: snakemake.wildcards[key] for key in IDENTITY})
