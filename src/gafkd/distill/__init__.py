"""The distillation stage: teachers, their cached outputs and the students trained from them.

Owns the distillation losses (losses/), the teacher runs (teachers), the teachers' logits and
similarity maps cached for the students (teacher_outputs, similarity_cache, cache_layout), the
student runs (students) and the scratch students that are a teacher run under another name
(reuse).

May import: gafkd.distill itself, gafkd.data, gafkd.images, gafkd.train and the shared top-level
modules. Nothing from report.
"""
