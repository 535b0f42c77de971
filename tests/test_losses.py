"""Each loss against values worked out by hand on tiny tensors."""
import math

import pytest
import torch
import yaml
from conftest import REPO, demo_config_with
from torch import nn
from torch.nn import functional as F

from gafkd.config import check_config_file
from gafkd.errors import ConfigError
from gafkd.distill.students import DistillationLoss

from gafkd.distill.losses import (gram_map, hinton_kd, merged_teacher_map, similarity_preserving,
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


# The lab's code, transcribed: TGD main_train.py (TDA_KD train_ad.py's form is further down).
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


# TDA_KD train_ad.py (github.com/jeunsom/TDA_KD), TrainManager.train, lines 102-103 and 144-161,
# transcribed line by line. `teacher` is the image teacher (fed the images, line 150), `teacher2`
# the signal teacher (line 149).
def kldivloss(input, target):
    """nn.KLDivLoss() of the lab's torch: reduction 'mean', over batch × classes (written out:
    torch announces that its 'mean' will become 'batchmean')."""
    return F.kl_div(input, target, reduction="sum") / input.numel()


def train_ad_loss(output, teacher_outputs, teacher_outputs2, target):
    lambda_ = 0.99
    T = 4
    criterion = nn.CrossEntropyLoss()
    stds = torch.std(output, dim=-1, keepdim=True)
    loss_SL = criterion(output / stds, target)
    stdt = torch.std(teacher_outputs, dim=-1, keepdim=True)
    loss_KD = kldivloss(F.log_softmax(output * 2.0 / stds, dim=1), F.softmax(teacher_outputs * 2.0 / stdt, dim=1))
    stdt2 = torch.std(teacher_outputs2, dim=-1, keepdim=True)
    loss_KD2 = kldivloss(F.log_softmax(output * 2.0 / stds, dim=1), F.softmax(teacher_outputs2 * 2.0 / stdt2, dim=1))
    return (1 - lambda_) * loss_SL + 0.7 * lambda_ * T * T * loss_KD + 0.3 * lambda_ * T * T * loss_KD2


TDA_KD_YAML = """
students:
  alphas: [0.7]               # weight of the image (GAF) teacher; the signal teacher gets 0.3
  kd:
    lambda: 0.99
    temperature: 4            # the T² weight
    reduction: mean           # nn.KLDivLoss()
    standardize_logits: true  # logits / their std, student and teachers
    kl_temperature: 0.5       # × 2 before the softmax
    ce_standardized: true     # cross-entropy on the standardised student logits
"""
TDA_KD = yaml.safe_load(TDA_KD_YAML)["students"]["kd"]
TDA_KD_ARGS = dict(standardize=True, reduction="mean", kl_temperature=0.5, ce_standardized=True,
                   kl_t_squared=True)


def lab_tensors():
    student = random_logits(10).requires_grad_()
    return student, random_logits(11), random_logits(12), torch.arange(6) * 2 % 14


def test_tda_kd_switches_are_train_ad_py():
    student, gaf, sig, targets = lab_tensors()
    lab = train_ad_loss(student, gaf, sig, targets)
    (lab_grad,) = torch.autograd.grad(lab, student)
    got = two_teacher_loss(student, targets, gaf, sig, 0.7, 0.99, 4.0, **TDA_KD_ARGS)
    (grad,) = torch.autograd.grad(got, student)
    assert got.item() == pytest.approx(lab.item(), rel=1e-6)
    assert torch.allclose(grad, lab_grad, rtol=1e-5, atol=1e-8)
    # the config's keys reach the loss: a kd2 student at α = 0.7
    loss = DistillationLoss("kd2", 0.7, TDA_KD, {"gaf": gaf, "sig": sig})
    assert loss(student, None, targets, torch.arange(6)).item() == pytest.approx(lab.item(), rel=1e-6)
    # not the form with the default switches
    default = two_teacher_loss(student, targets, gaf, sig, 0.7, 0.99, 4.0, reduction="mean")
    assert abs(default.item() - lab.item()) > 1e-3 * lab.item()


def test_tda_kd_switches_per_pack_member():
    """Packed students: (K, B, classes) logits and a (K,) α give each member its solo loss."""
    members = [(random_logits(s), random_logits(s + 1), random_logits(s + 2)) for s in (10, 20, 30)]
    student, gaf, sig = (torch.stack(t) for t in zip(*members))
    targets = torch.stack([torch.arange(6) % 14] * 3)
    alpha = torch.tensor([0.7, 0.3, 1.0])
    packed = two_teacher_loss(student, targets, gaf, sig, alpha, 0.99, 4.0, **TDA_KD_ARGS)
    solo = [two_teacher_loss(student[k], targets[k], gaf[k], sig[k], alpha[k].item(), 0.99, 4.0, **TDA_KD_ARGS)
            for k in range(3)]
    assert packed.shape == (3,)
    assert packed.tolist() == pytest.approx([s.item() for s in solo], rel=1e-6)
    assert packed[0].item() == pytest.approx(train_ad_loss(student[0], gaf[0], sig[0], targets[0]).item(), rel=1e-6)


def zscore(logits):
    return (logits - logits.mean(-1, keepdim=True)) / logits.std(-1, keepdim=True)


def kl(student, teacher, temperature):
    """Textbook KL(softmax(t/T) || softmax(s/T)), averaged over the batch."""
    p = F.softmax(teacher / temperature, dim=-1)
    return (p * (p.log() - F.log_softmax(student / temperature, dim=-1))).sum(-1).mean()


@pytest.mark.parametrize("switches", [
    {},
    {"ce_standardized": False, "kl_t_squared": True},       # the defaults, written out
    {"kl_temperature": 0.5},
    {"ce_standardized": True},
    {"kl_t_squared": False},
    {"standardize_logits": True, "kl_temperature": 2.0, "ce_standardized": True, "kl_t_squared": False},
])
def test_each_switch_by_itself(switches):
    """(1−λ)·CE(c) + λ·w·[α·KL_T'(s, g) + (1−α)·KL_T'(s, q)]: defaults c = s = raw logits,
    T' = T, w = T²; each switch changes its own part only."""
    student, gaf, sig, targets = lab_tensors()
    lam, temperature, alpha = 0.7, 4.0, 0.3
    kd = {"lambda": lam, "temperature": temperature, "reduction": "batchmean", "standardize_logits": False,
          **switches}
    z = zscore if kd["standardize_logits"] else (lambda x: x)
    t_kl = kd.get("kl_temperature", temperature)
    weight = temperature**2 if kd.get("kl_t_squared", True) else 1.0
    ce_logits = zscore(student) if kd.get("ce_standardized", False) else student
    expected = ((1 - lam) * F.cross_entropy(ce_logits, targets)
                + lam * weight * (alpha * kl(z(student), z(gaf), t_kl) + (1 - alpha) * kl(z(student), z(sig), t_kl)))
    got = DistillationLoss("kd2", alpha, kd, {"gaf": gaf, "sig": sig})(student, None, targets, torch.arange(6))
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


def config_with_kd(tmp_path, kd):
    return demo_config_with(tmp_path / "config.yaml", kd=kd)


def test_tda_kd_block_is_a_valid_config(tmp_path):
    config = check_config_file(config_with_kd(tmp_path, TDA_KD))
    assert config["students"]["kd"] == {**TDA_KD, "beta": 700, "sp_merge": "raw", "sp_source": "cache"}
    # left out, the new switches stay out of the settings: earlier runs keep their identity
    assert "kl_t_squared" not in check_config_file(config_with_kd(tmp_path, {}))["students"]["kd"]


@pytest.mark.parametrize("bad,named", [
    ({"kl_temperature": 0}, "kl_temperature"),
    ({"kl_temperature": "half"}, "half"),
    ({"ce_standardized": "yes"}, "yes"),
    ({"kl_t_squared": 1}, "kl_t_squared"),
    ({"standardized_scale": 2}, "standardized_scale"),
])
def test_bad_kd_switches_are_refused(tmp_path, bad, named):
    with pytest.raises(ConfigError, match=named):
        check_config_file(config_with_kd(tmp_path, bad))


def test_readme_gives_the_tested_tda_kd_block():
    # the block lives in the docs the README links (docs/lab.md, "Reproducing the lab's numbers")
    readme = "\n".join(path.read_text() for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))])
    start = readme.index("```yaml\nstudents:\n  alphas: [0.7]\n") + len("```yaml\n")
    assert yaml.safe_load(readme[start:readme.index("```", start)]) == yaml.safe_load(TDA_KD_YAML)


def test_a_packs_sp_term_is_each_members_solo_term_bit_for_bit_on_the_cpu():
    # member-major group outputs as a pack gives them: strided views of (B, K·C, L)
    torch.manual_seed(0)
    K, B = 3, 8
    joined = [torch.randn(B, K * c, n, requires_grad=True) for c, n in ((16, 100), (32, 50), (64, 25))]
    member_major = [j.view(B, K, -1, j.shape[-1]).transpose(0, 1) for j in joined]
    maps = [F.normalize(torch.rand(K, B, B), dim=-1) for _ in joined]
    packed = similarity_preserving(member_major, maps, batch_dims=2)
    packed.sum().backward()
    for k in range(K):
        solo = [g[k].detach().clone().requires_grad_() for g in member_major]
        loss = similarity_preserving(solo, [m[k] for m in maps])
        loss.backward()
        assert torch.equal(packed[k], loss)
        for j, s in zip(joined, solo):
            c = s.shape[1]
            assert torch.equal(j.grad[:, k * c:(k + 1) * c], s.grad)
