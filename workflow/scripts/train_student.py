"""Snakemake adapter: one student run on its own device slot (gafkd.students.train_student), or a
scratch student derived from the signal teacher run it is (gafkd.reuse, no device, no training)."""
import gafkd_src  # noqa: F401  (must come first)
from pathlib import Path

from gafkd.devices import job_device
from gafkd.logs import logged
from gafkd.reuse import student_from_teacher_run
from gafkd.students import train_student


def by_modality(suffix):
    return {m: snakemake.input.get(f"{m}_{suffix}") for m in ("gaf", "sig")
            if f"{m}_{suffix}" in snakemake.input.keys()}


if "same_run_model" in snakemake.input.keys():
    with logged(snakemake.log[0]):
        student_from_teacher_run(
            snakemake.input.windows, snakemake.params.settings,
            {k: snakemake.input[f"same_run_{k}"] for k in ("model", "metrics", "history")},
            outputs=dict(snakemake.output.items()),
        )
else:
    with logged(snakemake.log[0]), job_device(snakemake.config["devices"], snakemake.threads) as claim:
        train_student(
            snakemake.input.windows, snakemake.params.settings,
            teacher_outputs=by_modality("outputs"), teacher_models=by_modality("model"),
            teacher_similarity=by_modality("similarity"),
            images_h5=snakemake.input.get("images"), init_model=snakemake.input.get("init"),
            outputs=dict(snakemake.output.items()),
            resume_path=Path(snakemake.output.model).with_name("resume.pt"),
            device=claim.device, claim=claim.description,
        )
