"""Two teachers weighted by alpha: (1−λ)·CE + λ·T²·[α·KL_gaf + (1−α)·KL_sig].

α is the weight of the image (GAF) teacher; α = 1 is the GAF teacher alone, α = 0 the signal
teacher alone (a missing teacher may then be None). For the K members of a pack, logits are
(K, B, classes), targets (K, B) and α a (K,) tensor: one loss per member.
"""

import torch
from torch.nn import functional as F

from gafkd.losses.kd import maybe_standardized, soft_kl


def two_teacher_loss(student_logits, targets, gaf_logits, sig_logits, alpha, lam, temperature,
                     standardize=False, reduction="batchmean"):
    student = maybe_standardized(student_logits, standardize)
    kl = 0.0
    for teacher, weight in ((gaf_logits, alpha), (sig_logits, 1 - alpha)):
        if teacher is not None and (torch.is_tensor(weight) or weight > 0):
            kl = kl + weight * soft_kl(student, maybe_standardized(teacher, standardize),
                                       temperature, reduction)
    return (1 - lam) * cross_entropy(student_logits, targets) + lam * temperature**2 * kl


def cross_entropy(logits, targets):
    """The mean cross-entropy over the batch (per member for (K, B, classes) logits)."""
    if logits.dim() == 2:
        return F.cross_entropy(logits, targets)
    return F.cross_entropy(logits.flatten(0, -2), targets.flatten(), reduction="none").view(targets.shape).mean(-1)
