"""Two teachers weighted by alpha: (1−λ)·CE + λ·T²·[α·KL_gaf + (1−α)·KL_sig].

α is the weight of the image (GAF) teacher; α = 1 is the GAF teacher alone, α = 0 the signal
teacher alone (a missing teacher may then be None).
"""

from torch.nn import functional as F

from gafkd.losses.kd import maybe_standardized, soft_kl


def two_teacher_loss(student_logits, targets, gaf_logits, sig_logits, alpha, lam, temperature,
                     standardize=False, reduction="batchmean"):
    student = maybe_standardized(student_logits, standardize)
    kl = 0.0
    if alpha > 0:
        kl = kl + alpha * soft_kl(student, maybe_standardized(gaf_logits, standardize),
                                  temperature, reduction)
    if alpha < 1:
        kl = kl + (1 - alpha) * soft_kl(student, maybe_standardized(sig_logits, standardize),
                                        temperature, reduction)
    ce = F.cross_entropy(student_logits, targets)
    return (1 - lam) * ce + lam * temperature**2 * kl
