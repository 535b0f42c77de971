"""Distillation losses, one short module each."""

from gafkd.distill.losses.kd import soft_kl, hinton_kd, standardize_logits
from gafkd.distill.losses.multi_teacher import two_teacher_loss
from gafkd.distill.losses.similarity import (gram_map, merged_gram_map, merged_teacher_map, raw_gram,
                                             similarity_preserving)

__all__ = ["soft_kl", "hinton_kd", "standardize_logits", "two_teacher_loss", "gram_map",
           "merged_gram_map", "merged_teacher_map", "raw_gram", "similarity_preserving"]
