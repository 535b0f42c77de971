"""Similarity-preserving KD (Tung & Mori, ICCV 2019) with two teachers merged by alpha.

For each of the three groups: G = f fᵀ (B×B) of the flattened group outputs, rows L2-normalised.
The teachers' maps are merged as α·Ĝ_gaf + (1−α)·Ĝ_sig and row-normalised again: each teacher
is normalised first because a 2-D image network's raw Gram entries are on another scale than a
1-D signal network's, and merging raw maps would let one teacher win whatever α says. With
α = 1 (or 0) this is exactly Tung & Mori's map of the single teacher. Loss: Σ_g ‖Ĝ_t − Ĝ_s‖²_F / B².
"""

from torch.nn import functional as F


def gram_map(features):
    """Row-normalised B×B similarity of one group output (any spatial shape)."""
    flat = features.flatten(1).float()
    return F.normalize(flat @ flat.t(), p=2, dim=1)


def merged_teacher_map(gaf_features, sig_features, alpha):
    if alpha >= 1:
        return gram_map(gaf_features)
    if alpha <= 0:
        return gram_map(sig_features)
    merged = alpha * gram_map(gaf_features) + (1 - alpha) * gram_map(sig_features)
    return F.normalize(merged, p=2, dim=1)


def similarity_preserving(student_groups, teacher_maps):
    """Σ_g ‖teacher_maps[g] − Ĝ_s,g‖²_F / B² over the groups."""
    batch = student_groups[0].shape[0]
    loss = 0.0
    for features, target in zip(student_groups, teacher_maps):
        loss = loss + (gram_map(features) - target).pow(2).sum() / batch**2
    return loss
