"""Each loss against values worked out by hand on tiny tensors."""
import math

import pytest
import torch
from torch.nn import functional as F

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


def softmax(values):
    exps = [math.exp(v) for v in values]
    return [e / sum(exps) for e in exps]


def test_standardised_loss_by_hand():
    """Standardisation changes what the KL term compares; the cross-entropy stays on the student's
    own logits."""
    student = torch.tensor([[2.0, 0.0, -2.0]])      # mean 0, unbiased std 2 -> (1, 0, −1)
    teacher = torch.tensor([[0.0, 0.0, 3.0]])       # mean 1, unbiased std √3 -> (−1, −1, 2)/√3
    targets = torch.tensor([0])
    lam, temperature = 0.7, 2.0
    r3 = math.sqrt(3)
    p = softmax([-1 / r3 / temperature, -1 / r3 / temperature, 2 / r3 / temperature])
    q = softmax([1 / temperature, 0.0, -1 / temperature])
    kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    ce = math.log(1 + math.exp(-2) + math.exp(-4))  # −log softmax((2, 0, −2))[0]
    expected = (1 - lam) * ce + lam * temperature**2 * kl
    got = two_teacher_loss(student, targets, teacher, None, 1.0, lam, temperature, standardize=True)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # α = 0 with the same teacher as signal teacher; the standardised KL differs from the raw one
    got_sig = two_teacher_loss(student, targets, None, teacher, 0.0, lam, temperature, standardize=True)
    assert got_sig.item() == pytest.approx(expected, rel=1e-6)
    raw = two_teacher_loss(student, targets, teacher, None, 1.0, lam, temperature)
    assert abs(raw.item() - expected) > 0.05


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


# The lab's code, transcribed: TDA_KD train_ad.py / TGD main_train.py.
def lab_kd(student, teacher, temperature):
    """nn.KLDivLoss()(log_softmax(s/T), softmax(t/T)): with the default reduction of the lab's
    torch, Σ p (log p − log q) over batch × classes, divided by batch × classes."""
    p = F.softmax(teacher / temperature, dim=1)
    pointwise = torch.xlogy(p, p) - p * F.log_softmax(student / temperature, dim=1)
    return pointwise.sum() / pointwise.numel()


def lab_gram(features):
    flat = features.view(features.size(0), -1)
    return torch.mm(flat, flat.t())


def random_logits(seed, batch=6, classes=14):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, classes, generator=generator) * 3


def test_kd_mean_reduction_is_the_labs_kldivloss():
    student, teacher = random_logits(0), random_logits(1)
    by_hand = lab_kd(student, teacher, 4.0).item()
    assert soft_kl(student, teacher, 4.0, "mean").item() == pytest.approx(by_hand, rel=1e-5)
    # batchmean is K = 14 times larger
    assert soft_kl(student, teacher, 4.0, "batchmean").item() == pytest.approx(14 * by_hand, rel=1e-5)


def test_two_teacher_loss_with_the_labs_reduction():
    student, gaf, sig = random_logits(2), random_logits(3), random_logits(4)
    targets = torch.arange(6) % 14
    lam, temperature, alpha = 0.7, 4.0, 0.3
    lab = ((1 - lam) * torch.nn.CrossEntropyLoss()(student, targets)
           + lam * temperature**2 * (alpha * lab_kd(student, gaf, temperature)
                                     + (1 - alpha) * lab_kd(student, sig, temperature)))
    got = two_teacher_loss(student, targets, gaf, sig, alpha, lam, temperature, reduction="mean")
    assert got.item() == pytest.approx(lab.item(), rel=1e-5)


def test_raw_merged_sp_is_tgds_loss():
    """TGD main_train.py: maps of the raw Gram matrices mixed by alpha, then normalised;
    sp = Σ_g mse_loss(student map, teacher map); loss += sp / 3.0 * 3000.0 (β = 1000)."""
    generator = torch.Generator().manual_seed(5)
    shapes_2d = [(8, 16, 8, 8), (8, 32, 4, 4), (8, 64, 2, 2)]
    shapes_1d = [(8, 16, 50), (8, 32, 25), (8, 64, 13)]
    gaf = [torch.randn(s, generator=generator) * 4 for s in shapes_2d]     # another scale
    sig = [torch.randn(s, generator=generator) for s in shapes_1d]
    student = [torch.randn(s, generator=generator) for s in shapes_1d]
    alpha = 0.3
    sp = 0.0
    for s, t1, t2 in zip(student, gaf, sig):
        tmap = F.normalize(lab_gram(t1) * alpha + lab_gram(t2) * (1 - alpha), p=2, dim=1)
        sp = sp + F.mse_loss(F.normalize(lab_gram(s), p=2, dim=1), tmap)
    tgd = sp / 3.0 * 3000.0
    maps = [merged_teacher_map(g, s, alpha, "raw") for g, s in zip(gaf, sig)]
    assert (1000 * similarity_preserving(student, maps)).item() == pytest.approx(tgd.item(), rel=1e-5)
    normalized = [merged_teacher_map(g, s, alpha, "normalized") for g, s in zip(gaf, sig)]
    assert not torch.allclose(normalized[0], maps[0], atol=1e-3)   # the switch changes the maps

