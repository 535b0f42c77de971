"""Names of the student grid: methods, teacher tags, alphas (torch-free, for the workflow)."""

import re

from gafkd.errors import ConfigError

# Result folders name the split that produced them: the split kind itself for a single split,
# fold<i> for leave-one-subject-out.
SINGLE_SPLIT_KINDS = ("predefined", "random", "holdout")
FOLD_PATTERN = r"predefined|random|holdout|fold\d+"
SPLIT_DESCRIPTIONS = {
    "predefined": "the source's published train/test split",
    "random": "random window split (windows of one subject in train and test: optimistic)",
    "holdout": "subject-disjoint holdout (test subjects unseen in training)",
    "loso": "leave-one-subject-out",
}

IMAGE_METHODS = ("gasf", "gadf", "mtf")   # image encodings (gafkd.gaf)

METHODS = ("scratch", "kd-gaf", "kd-sig", "kd2", "kd2-anneal", "kd2-anneal-sp")
SP_METHODS = ("kd2-anneal-sp",)                   # + similarity-preserving KD
SP_SOURCES = ("cache", "online")                  # where SP students get the teachers' Gram blocks
TEACHERS_PATTERN = re.compile(r"^(?:none|gaf-(wrn\d+-\d+)|sig-(wrn\d+-\d+)|gaf-(wrn\d+-\d+)\+sig-(wrn\d+-\d+))$")


def teacher_modalities(method):
    return {"scratch": (), "kd-gaf": ("gaf",), "kd-sig": ("sig",)}.get(method, ("gaf", "sig"))


def fixed_alpha(method):
    """α of the methods that have no α grid (None for the kd2 family)."""
    return {"scratch": 0.0, "kd-gaf": 1.0, "kd-sig": 0.0}.get(method)


def alpha_tag(alpha):
    return f"{float(alpha):g}"


def teachers_tag(method, teacher_arch):
    """'none', 'gaf-wrn16-3', 'sig-wrn16-3' or 'gaf-wrn16-3+sig-wrn16-3'."""
    return "+".join(f"{m}-{teacher_arch}" for m in teacher_modalities(method)) or "none"


def parse_teachers_tag(method, tag):
    """{'gaf': arch, 'sig': arch} of a teachers tag, checked against the method."""
    if TEACHERS_PATTERN.match(tag) is None:
        raise ConfigError(f"teachers '{tag}' is not none, gaf-<arch>, sig-<arch> or gaf-<arch>+sig-<arch>")
    parsed = {} if tag == "none" else dict(part.split("-", 1) for part in tag.split("+"))
    if tuple(parsed) != teacher_modalities(method):
        raise ConfigError(f"method '{method}' takes teachers {teacher_modalities(method) or 'none'}, "
                          f"not '{tag}'")
    return parsed


def check_alpha(method, alpha):
    fixed = fixed_alpha(method)
    if fixed is not None and float(alpha) != fixed:
        raise ConfigError(f"method '{method}' has α = {fixed:g}, not {alpha}")
    if not 0 <= float(alpha) <= 1:
        raise ConfigError(f"α must be within [0, 1], got {alpha}")


def fold_names(kind, n_subjects=0):
    """Result folder names of a split: [kind] for a single split, fold0... for LOSO."""
    if kind == "loso":
        return [f"fold{i}" for i in range(n_subjects)]
    return [kind]


def split_kind(fold):
    """The split kind a result folder name comes from ('fold3' -> 'loso')."""
    if fold in SINGLE_SPLIT_KINDS:
        return fold
    if re.fullmatch(r"fold\d+", fold):
        return "loso"
    raise ConfigError(f"'{fold}' is not a split folder name ({FOLD_PATTERN})")
