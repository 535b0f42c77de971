"""Hinton knowledge distillation: KL between temperature-softened teacher and student outputs.

Logits are (B, classes), or (K, B, classes) for the K members of a pack (gafkd.train.packed): every
loss then gives one value per member.
"""

from torch.nn import functional as F

# mean: over batch x classes, as the lab's nn.KLDivLoss() (its default reduction then);
# batchmean: summed over classes, averaged over the batch (the textbook KL, K times larger).
# Both are divided out here, since torch announces that its own `mean` will become `batchmean`.
KL_REDUCTIONS = ("mean", "batchmean")


def soft_kl(student_logits, teacher_logits, temperature, reduction="batchmean"):
    """KL(softmax(t / T) || softmax(s / T)) with the given reduction (no T² factor)."""
    if reduction not in KL_REDUCTIONS:
        raise ValueError(f"unknown KL reduction '{reduction}' (known: {', '.join(KL_REDUCTIONS)})")
    log_student = F.log_softmax(student_logits / temperature, dim=-1)
    log_teacher = F.log_softmax(teacher_logits / temperature, dim=-1)
    total = F.kl_div(log_student, log_teacher, reduction="none", log_target=True).sum((-2, -1))
    batch, classes = log_student.shape[-2:]
    return total / (batch * classes if reduction == "mean" else batch)


def hinton_kd(student_logits, teacher_logits, temperature, reduction="batchmean"):
    """T² · KL, so that gradients keep their scale whatever the temperature."""
    return temperature**2 * soft_kl(student_logits, teacher_logits, temperature, reduction)


def standardize_logits(logits, eps=1e-7):
    """Logit standardisation (Sun et al., CVPR 2024): z-score each sample's logits (unbiased std
    over classes) before the softmax, so the student matches the teacher's logit relations, not
    their scale. A softmax ignores the shift: inside one this is x/σ (TDA_KD train_ad.py) up to eps."""
    mean = logits.mean(dim=-1, keepdim=True)
    std = logits.std(dim=-1, keepdim=True)
    return (logits - mean) / (std + eps)


def maybe_standardized(logits, standardize):
    return standardize_logits(logits) if standardize else logits
