"""Each loss against values worked out by hand on tiny tensors."""
import math

import pytest
import torch

from gafkd.losses import (gram_map, hinton_kd, merged_teacher_map, similarity_preserving,
                          soft_kl, standardize_logits, two_teacher_loss)

LN3 = math.log(3)
# softmax([ln 3, 0]) = [3/4, 1/4]; softmax([0, 0]) = [1/2, 1/2]
KL_QUARTERS_VS_HALVES = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
# softmax([0, ln 3]) = [1/4, 3/4]
STUDENT = torch.zeros(2, 2)


def test_soft_kl_and_hinton_kd():
    teacher = torch.tensor([[LN3, 0.0], [LN3, 0.0]])
    assert soft_kl(STUDENT, teacher, 1.0).item() == pytest.approx(KL_QUARTERS_VS_HALVES, rel=1e-6)
    # Temperature 2 on teacher logits 2·ln 3 gives the same distributions; T² = 4.
    assert hinton_kd(STUDENT, 2 * teacher, 2.0).item() == pytest.approx(4 * KL_QUARTERS_VS_HALVES, rel=1e-6)


def test_kl_is_a_batch_mean():
    teacher = torch.tensor([[LN3, 0.0], [0.0, 0.0]])      # the second row agrees: KL 0
    assert soft_kl(STUDENT, teacher, 1.0).item() == pytest.approx(KL_QUARTERS_VS_HALVES / 2, rel=1e-6)


def test_two_teacher_weighting():
    targets = torch.tensor([0, 0])
    gaf = torch.tensor([[LN3, 0.0]] * 2)
    sig = torch.zeros(2, 2)                                # agrees with the student: KL 0
    lam, temperature, alpha = 0.7, 1.0, 0.3
    expected = (1 - lam) * math.log(2) + lam * (alpha * KL_QUARTERS_VS_HALVES + (1 - alpha) * 0.0)
    got = two_teacher_loss(STUDENT, targets, gaf, sig, alpha, lam, temperature)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # α is the weight of the GAF teacher: α = 0 ignores it entirely (it may even be missing)
    only_sig = two_teacher_loss(STUDENT, targets, None, sig, 0.0, lam, temperature)
    assert only_sig.item() == pytest.approx((1 - lam) * math.log(2), rel=1e-6)
    only_gaf = two_teacher_loss(STUDENT, targets, gaf, None, 1.0, lam, 2.0)
    kl_t2 = soft_kl(STUDENT, gaf, 2.0).item()
    assert only_gaf.item() == pytest.approx((1 - lam) * math.log(2) + lam * 4 * kl_t2, rel=1e-6)


def test_logit_standardisation():
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    # mean 2, unbiased std 1
    assert standardize_logits(logits).tolist()[0] == pytest.approx([-1.0, 0.0, 1.0], abs=1e-6)
    # scaled and shifted teachers give the same standardised KD
    targets = torch.tensor([0])
    student = torch.tensor([[0.5, 0.1, -0.3]])
    a = two_teacher_loss(student, targets, logits, None, 1.0, 0.7, 4.0, standardize=True)
    b = two_teacher_loss(student, targets, 10 * logits + 3, None, 1.0, 0.7, 4.0, standardize=True)
    assert a.item() == pytest.approx(b.item(), rel=1e-5)


def test_gram_map_and_similarity_preserving():
    teacher = torch.eye(2)                                 # G = I, rows already unit
    student = torch.ones(2, 2)                             # G = all 2 -> rows (1/√2, 1/√2)
    r = 1 / math.sqrt(2)
    assert gram_map(student).flatten().tolist() == pytest.approx([r, r, r, r])
    expected_one_group = 2 * ((1 - r) ** 2 + r**2) / 4    # ‖I − N‖²_F / B²
    loss = similarity_preserving([student, student.reshape(2, 1, 2)], [gram_map(teacher)] * 2)
    assert loss.item() == pytest.approx(2 * expected_one_group, rel=1e-6)


def test_teacher_maps_merged_by_alpha():
    gaf = torch.eye(2).reshape(2, 1, 2)                    # 2-D-like shape: flattened anyway
    sig = torch.ones(2, 2)
    r = 1 / math.sqrt(2)
    assert torch.equal(merged_teacher_map(gaf, sig, 1.0), gram_map(gaf))
    assert torch.equal(merged_teacher_map(gaf, sig, 0.0), gram_map(sig))
    merged = merged_teacher_map(gaf, sig, 0.25)
    row = [0.25 + 0.75 * r, 0.75 * r]
    norm = math.hypot(*row)
    assert merged[0].tolist() == pytest.approx([row[0] / norm, row[1] / norm], rel=1e-6)
