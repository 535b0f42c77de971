"""Snakemake adapter: what a teacher's students read of it, by rule: its logits of every window
(teacher_outputs: gafkd.distill.teacher_outputs) or its similarity cache over its fold's training
windows (teacher_similarity: gafkd.distill.similarity_cache)."""
import gafkd_src  # noqa: F401  (must come first)
from gpu_job import gpu_job

from gafkd.distill.similarity_cache import build_similarity_cache
from gafkd.distill.teacher_outputs import IDENTITY, write_teacher_outputs

BUILDERS = {"teacher_outputs": write_teacher_outputs, "teacher_similarity": build_similarity_cache}

with gpu_job(snakemake) as claim:
    BUILDERS[snakemake.rule](snakemake.input.model, snakemake.input.windows, snakemake.input.get("images"),
                             snakemake.output[0], claim.device,
                             expected={key: snakemake.wildcards[key] for key in IDENTITY})
