"""Snakemake adapter: one student run on its own device slot (gafkd.distill.students), or a scratch
student derived from the signal teacher run it is (gafkd.distill.reuse, no device, no training)."""
import gafkd_src  # noqa: F401  (must come first)

from gafkd.train.devices import job_device
from gafkd.logs import logged
from gafkd.distill.reuse import student_from_teacher_run
from gafkd.distill.students import train_student_from_inputs

if "same_run_model" in snakemake.input.keys():
    with logged(snakemake.log[0]):
        student_from_teacher_run(
            snakemake.input.windows, snakemake.params.settings,
            {k: snakemake.input[f"same_run_{k}"] for k in ("model", "metrics", "history", "predictions")},
            outputs=dict(snakemake.output.items()),
        )
else:
    gpus = snakemake.resources.get("gpu")      # 0 where --resources gpu=0 scaled the request down
    with logged(snakemake.log[0]), job_device(snakemake.config, snakemake.threads, gpus) as claim:
        train_student_from_inputs(dict(snakemake.input.items()), snakemake.params.settings,
                                  outputs=dict(snakemake.output.items()), device=claim.device,
                                  claim=claim.description)
