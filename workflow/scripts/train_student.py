"""Snakemake adapter: one student run on its own device slot (gafkd.students.train_student)."""
import gafkd_src  # noqa: F401  (must come first)
from pathlib import Path

import torch

from gafkd.devices import claim_device
from gafkd.logs import logged
from gafkd.students import train_student

inputs = snakemake.input
with logged(snakemake.log[0]) as log:
    devices = snakemake.config["devices"]  # not params: where a job runs never reruns it
    with claim_device(devices["jobs_per_gpu"], devices["lock_dir"]) as claim:
        log.info("device: %s", claim.description)
        torch.set_num_threads(snakemake.threads)
        train_student(
            inputs.windows, snakemake.params.settings,
            teacher_outputs={m: inputs.get(f"{m}_outputs") for m in ("gaf", "sig") if f"{m}_outputs" in inputs.keys()},
            teacher_models={m: inputs.get(f"{m}_model") for m in ("gaf", "sig") if f"{m}_model" in inputs.keys()},
            images_h5=inputs.get("images"), init_model=inputs.get("init"),
            outputs=dict(snakemake.output.items()),
            resume_path=Path(snakemake.output.model).with_name("resume.pt"),
            device=claim.device, claim=claim.description,
        )
