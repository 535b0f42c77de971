"""Hinton knowledge distillation: KL between temperature-softened teacher and student outputs."""

from torch.nn import functional as F


def soft_kl(student_logits, teacher_logits, temperature):
    """KL(softmax(t / T) || softmax(s / T)), averaged over the batch (no T² factor)."""
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    log_teacher = F.log_softmax(teacher_logits / temperature, dim=1)
    return F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True)


def hinton_kd(student_logits, teacher_logits, temperature):
    """T² · KL, so that gradients keep their scale whatever the temperature."""
    return temperature**2 * soft_kl(student_logits, teacher_logits, temperature)


def standardize_logits(logits, eps=1e-7):
    """Logit standardisation (Sun et al., CVPR 2024): z-score each sample's logits before the
    temperature softmax, so the student matches the teacher's logit relations, not their scale."""
    mean = logits.mean(dim=1, keepdim=True)
    std = logits.std(dim=1, keepdim=True)
    return (logits - mean) / (std + eps)


def maybe_standardized(logits, standardize):
    return standardize_logits(logits) if standardize else logits


