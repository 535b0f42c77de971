"""Similarity-preserving KD (Tung & Mori, ICCV 2019) with two teachers merged by alpha.

For each of the three groups: G = f fᵀ (B×B) of the flattened group outputs; Ĝ is G with its
rows L2-normalised. Teacher maps of two teachers, by `merge`:
    raw         Ĝ_t = normalise(α·G_gaf + (1−α)·G_sig), as the lab's TGD code
    normalized  Ĝ_t = normalise(α·Ĝ_gaf + (1−α)·Ĝ_sig): each teacher normalised first, since a
                2-D image network's raw Gram entries are on another scale than a 1-D network's
With α = 1 (or 0) both are Tung & Mori's map of the single teacher. Loss: Σ_g mse(Ĝ_s, Ĝ_t) =
Σ_g ‖Ĝ_t − Ĝ_s‖²_F / B², weighted by β outside (TGD's `sp / 3 · 3000` is β = 1000).

For the K members of a pack (gafkd.train.packed), group outputs are (K, B, ...) (`batch_dims=2`),
Gram maps (K, B, B) and α a (K,) tensor: one loss per member.
"""

import torch
from torch.nn import functional as F

SP_MERGES = ("raw", "normalized")


def raw_gram(features, batch_dims=1):
    """f fᵀ of the outputs flattened after the first `batch_dims` dimensions (B×B, or K×B×B)."""
    flat = features.flatten(batch_dims).float()
    return flat @ flat.transpose(-2, -1)


def gram_map(features, batch_dims=1):
    """Row-normalised B×B similarity of one group output (any spatial shape)."""
    return F.normalize(raw_gram(features, batch_dims), p=2, dim=-1)


def merged_teacher_map(gaf_features, sig_features, alpha, merge="normalized"):
    """The teachers' merged map from their group outputs of one batch."""
    gaf = raw_gram(gaf_features) if alpha > 0 else None
    sig = raw_gram(sig_features) if alpha < 1 else None
    return merged_gram_map(gaf, sig, alpha, merge)


def merged_gram_map(gaf_gram, sig_gram, alpha, merge="normalized", sig_weight=None):
    """The teachers' merged map from their raw B×B Gram matrices (one may be None at α 0 or 1;
    α a (K,) tensor merges the K members' (K, B, B) maps each with its own α, and `sig_weight`
    then gives their 1 − α as gafkd.distill.losses.two_teacher_loss takes it)."""
    if merge not in SP_MERGES:
        raise ValueError(f"unknown SP merge '{merge}' (known: {', '.join(SP_MERGES)})")
    beta = 1 - alpha if sig_weight is None else sig_weight
    if not torch.is_tensor(alpha):
        if alpha >= 1:
            return F.normalize(gaf_gram, p=2, dim=-1)
        if alpha <= 0:
            return F.normalize(sig_gram, p=2, dim=-1)
    else:
        alpha, beta = alpha.view(-1, 1, 1), beta.view(-1, 1, 1)
    if merge == "raw":
        merged = alpha * gaf_gram + beta * sig_gram
    else:
        merged = alpha * F.normalize(gaf_gram, p=2, dim=-1) + beta * F.normalize(sig_gram, p=2, dim=-1)
    return F.normalize(merged, p=2, dim=-1)


def similarity_preserving(student_groups, teacher_maps, batch_dims=1):
    """Σ_g ‖teacher_maps[g] − Ĝ_s,g‖²_F / B² over the groups (per member with batch_dims=2)."""
    if batch_dims == 2 and student_groups[0].device.type == "cpu":
        # A pack on the CPU: member by member on contiguous rows, as each solo run computes it (a
        # CPU's batched or strided products may sum in another order), so that a member is its
        # solo run bit for bit.
        return torch.stack([similarity_preserving([g[k].contiguous() for g in student_groups],
                                                  [t[k] for t in teacher_maps])
                            for k in range(student_groups[0].shape[0])])
    batch = student_groups[0].shape[batch_dims - 1]
    loss = 0.0
    for features, target in zip(student_groups, teacher_maps):
        loss = loss + (gram_map(features, batch_dims) - target).pow(2).sum((-2, -1)) / batch**2
    return loss
