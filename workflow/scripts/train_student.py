"""Snakemake adapter: one student run on its own device slot (gafkd.distill.students), or a scratch
student derived from the signal teacher run it is (gafkd.distill.reuse, no device, no training)."""
import gafkd_src  # noqa: F401  (must come first)
from gpu_job import gpu_job

from gafkd.distill.reuse import student_from_teacher_run
from gafkd.distill.students import train_student_from_inputs
from gafkd.logs import logged

if "same_run_model" in snakemake.input.keys():
    with logged(snakemake.log[0]):
        student_from_teacher_run(
            snakemake.input.windows, snakemake.params.settings,
            {k: snakemake.input[f"same_run_{k}"] for k in ("model", "metrics", "history", "predictions")},
            outputs=dict(snakemake.output.items()),
        )
else:
    with gpu_job(snakemake) as claim:
        train_student_from_inputs(dict(snakemake.input.items()), snakemake.params.settings,
                                  outputs=dict(snakemake.output.items()), device=claim.device,
                                  claim=claim.description)
