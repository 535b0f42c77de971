"""Semantic checks of the config beyond its JSON schema, and per-source defaults.

The schema (workflow/schemas/config.schema.yaml) checks keys, types and ranges; this module
checks what depends on the source: which keys apply, required ones, channel names, split kinds.
"""

import copy

from gafkd.errors import ConfigError
from gafkd.grid import teacher_modalities
from gafkd.archs import parse_arch
from gafkd.readers import geneactiv, pamap2

REQUIRED = object()
SOURCE_OPTIONS = {
    "basicmotions": {},
    "geneactiv_mat": {"raw": REQUIRED, "window": REQUIRED, "sampling_rate_hz": 100.0,
                      "channels": None, "class_map": None},
    "pamap2": {"raw": REQUIRED, **pamap2.DEFAULTS, "class_map": None, "subjects": None},
}
SERIES_LENGTH = {"basicmotions": 100}
DEFAULT_SPLIT_KIND = {"basicmotions": "predefined", "geneactiv_mat": "holdout", "pamap2": "loso"}
SUBJECT_SPLITS = {"holdout", "loso"}


def resolve_dataset(name, spec):
    """A copy of one dataset's config with the source's defaults filled in; errors name the key."""
    where = f"datasets.{name}"
    source = spec.get("source")
    if source not in SOURCE_OPTIONS:
        raise ConfigError(f"{where}.source: unknown source {source!r} "
                          f"(known: {', '.join(sorted(SOURCE_OPTIONS))})")
    options = SOURCE_OPTIONS[source]
    resolved = copy.deepcopy(spec)
    for key in spec:
        if key not in options and key not in ("source", "split"):
            allowed = ", ".join(["source", "split", *options])
            raise ConfigError(f"{where}.{key}: does not apply to source '{source}' (allowed: {allowed})")
    for key, default in options.items():
        if key not in resolved or resolved[key] is None:
            if default is REQUIRED:
                raise ConfigError(f"{where}.{key}: required for source '{source}'")
            resolved[key] = default
    if source == "pamap2":
        try:
            pamap2.resolve_channels(resolved["channels"])
        except ConfigError as exc:
            raise ConfigError(f"{where}.channels: {exc}") from None
    split = resolved.setdefault("split", {})
    split.setdefault("kind", DEFAULT_SPLIT_KIND[source])
    if split["kind"] == "predefined" and source != "basicmotions":
        raise ConfigError(f"{where}.split.kind: 'predefined' needs a source with a published "
                          f"test set (basicmotions), not '{source}'")
    if split["kind"] in SUBJECT_SPLITS and source == "basicmotions":
        raise ConfigError(f"{where}.split.kind: '{split['kind']}' splits by subject, but "
                          f"basicmotions has no subject ids")
    if split["kind"] in ("holdout", "random") and split["val_fraction"] + split["test_fraction"] >= 1:
        raise ConfigError(f"{where}.split: val_fraction + test_fraction must be below 1 "
                          f"(got {split['val_fraction']} + {split['test_fraction']})")
    return resolved


def fold_names(spec):
    """Fold names of a resolved dataset, known before its windows are built: `holdout`, or for
    leave-one-subject-out `fold0`... in the order of the subject ids in the raw file names."""
    if spec["split"]["kind"] != "loso":
        return ["holdout"]
    if spec["source"] == "pamap2":
        subjects = [s for s, _ in pamap2.list_subject_files(spec["raw"], spec.get("subjects"))]
    else:
        subjects = sorted({s for s, _, _, _ in geneactiv.list_window_files(spec["raw"])})
    return [f"fold{i}" for i in range(len(subjects))]


def series_length(spec):
    return SERIES_LENGTH.get(spec["source"], spec.get("window"))


def check_config(config):
    """Resolve every dataset in place; check the image size against every window length."""
    datasets = config.get("datasets") or {}
    if not datasets:
        raise ConfigError("datasets: at least one dataset is required")
    for name, spec in datasets.items():
        datasets[name] = resolve_dataset(name, spec)
    for arch in config["teachers"]["archs"]:
        try:
            parse_arch(arch)
        except ConfigError as exc:
            raise ConfigError(f"teachers.archs: {exc}") from None
    check_students(config)
    size = config["images"]["size"]
    for name, spec in datasets.items():
        if size > series_length(spec):
            raise ConfigError(f"images.size: {size} is larger than the window length "
                              f"{series_length(spec)} of dataset '{name}'")
    return config


def check_students(config):
    """Students can only learn from teachers the config trains; fills teacher_archs."""
    students, teachers = config["students"], config["teachers"]
    parse_arch(students["arch"])
    if students["teacher_archs"] is None:
        students["teacher_archs"] = list(teachers["archs"])
    missing = [a for a in students["teacher_archs"] if a not in teachers["archs"]]
    if missing:
        raise ConfigError(f"students.teacher_archs: {missing} are not in teachers.archs {teachers['archs']}")
    needed = {m for method in students["methods"] for m in teacher_modalities(method)}
    absent = sorted(needed - set(teachers["modalities"]))
    if absent:
        raise ConfigError(f"students.methods need {absent} teachers, but teachers.modalities is "
                          f"{teachers['modalities']}")
    seeds = students["seeds"] if students["teacher_seed"] == "same" else [students["teacher_seed"]]
    if needed and set(seeds) - set(teachers["seeds"]):
        raise ConfigError(f"students need teachers of seed(s) {sorted(set(seeds) - set(teachers['seeds']))} "
                          f"(students.teacher_seed: {students['teacher_seed']!r}), not in teachers.seeds")
