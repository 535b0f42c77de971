"""Snakemake adapter: a teacher's logits for every window (gafkd.teacher_outputs)."""
import gafkd_src  # noqa: F401  (must come first)
import torch

from gafkd.devices import claim_device
from gafkd.logs import logged
from gafkd.teacher_outputs import write_teacher_outputs

with logged(snakemake.log[0]) as log:
    devices = snakemake.config["devices"]  # not params: where a job runs never reruns it
    with claim_device(devices["jobs_per_gpu"], devices["lock_dir"]) as claim:
        log.info("device: %s", claim.description)
        torch.set_num_threads(snakemake.threads)
        write_teacher_outputs(snakemake.input.model, snakemake.input.windows,
                              snakemake.input.get("images"), snakemake.output[0], claim.device)
