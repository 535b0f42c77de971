"""Two teachers weighted by alpha: (1−λ)·CE + λ·T²·[α·KL_gaf + (1−α)·KL_sig].

α is the weight of the image (GAF) teacher; α = 1 is the GAF teacher alone, α = 0 the signal
teacher alone (a missing teacher may then be None). For the K members of a pack, logits are
(K, B, classes), targets (K, B) and α a (K,) tensor: one loss per member.

Switches (students.kd in the config), the default first:
- standardize: the KL compares raw logits | per-sample standardised logits of the student and
  both teachers (gafkd.distill.losses.kd.standardize_logits);
- kl_temperature: None, the KL's softmaxes at `temperature` | at this temperature, `temperature`
  then only setting the T² weight (TDA_KD train_ad.py: softmax(2·x/σ), i.e. 0.5, and T = 4);
- ce_standardized: cross-entropy on the raw student logits | on the standardised ones;
- kl_t_squared: the KL term weighted by T² | not.
"""

import torch
from torch.nn import functional as F

from gafkd.distill.losses.kd import maybe_standardized, soft_kl


def two_teacher_loss(student_logits, targets, gaf_logits, sig_logits, alpha, lam, temperature,
                     standardize=False, reduction="batchmean", kl_temperature=None,
                     ce_standardized=False, kl_t_squared=True, sig_weight=None):
    """`sig_weight`: the signal teacher's weight, 1 − α unless given (a pack gives its members'
    1 − α computed from their float α, as a solo run computes it, not in float32)."""
    student = maybe_standardized(student_logits, standardize)
    softmax_temperature = temperature if kl_temperature is None else kl_temperature
    kl = 0.0
    for teacher, weight in ((gaf_logits, alpha), (sig_logits, 1 - alpha if sig_weight is None else sig_weight)):
        if teacher is not None and (torch.is_tensor(weight) or weight > 0):
            kl = kl + weight * soft_kl(student, maybe_standardized(teacher, standardize),
                                       softmax_temperature, reduction)
    kd_weight = lam * temperature**2 if kl_t_squared else lam
    ce = cross_entropy(maybe_standardized(student_logits, ce_standardized), targets)
    return (1 - lam) * ce + kd_weight * kl


def cross_entropy(logits, targets):
    """The mean cross-entropy over the batch (per member for (K, B, classes) logits)."""
    if logits.dim() == 2:
        return F.cross_entropy(logits, targets)
    return F.cross_entropy(logits.flatten(0, -2), targets.flatten(), reduction="none").view(targets.shape).mean(-1)
