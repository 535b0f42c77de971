"""Semantic checks of the config beyond its JSON schema.

The schema (workflow/schemas/config.schema.yaml) checks keys, types and ranges; this module
checks what depends on the source (which keys apply, required ones, channel names, split kinds:
gafkd.data.datasets.resolve_dataset, with each source's defaults) and across sections.
"""

import os
import sys
from pathlib import Path

from gafkd.configfile import load_schema, load_yaml, merge_config, non_finite_numbers, schema_errors
from gafkd.errors import ConfigError, GafkdError
from gafkd.encodings import PI_MIN_LENGTH, encoding_parts
from gafkd.data.splits import fold_names as split_fold_names
from gafkd.methods import TEACHER_ROWS, alpha_tag, method
from gafkd.archs import parse_arch
from gafkd.headline import check_headline
from gafkd.data.datasets import resolve_dataset
from gafkd.data.readers import geneactiv, pamap2

SERIES_LENGTH = {"basicmotions": 100}


def download_target(spec):
    """The raw folder a resolved dataset's `download` is to fetch (normalised): its `raw` where
    that is missing and a download is configured, else None. An existing path is never fetched."""
    if spec.get("download") is None or not spec.get("raw"):
        return None
    raw = os.path.normpath(spec["raw"])
    return None if os.path.lexists(raw) else raw


def planned_downloads(datasets):
    """{raw folder to fetch: the download_raw settings} of resolved datasets. Datasets that share
    a missing raw folder must agree on their download; the subjects are every one they plan."""
    plans, owners = {}, {}
    for name, spec in datasets.items():
        raw = download_target(spec)
        if raw is None:
            continue
        download, chosen = spec["download"], spec.get("subjects")
        if raw in plans:
            first = owners[raw]
            if datasets[first]["download"] != download:
                raise ConfigError(f"datasets.{name}.download: differs from datasets.{first}.download, "
                                  f"which fetches the same raw folder {raw}")
            plan = plans[raw]
            plan["subjects"] = sorted(set(plan["subjects"]) | set(chosen or download["subjects"]))
            if chosen is None:
                plan["all_subjects"] = download["subjects"]
            continue
        owners[raw] = name
        plans[raw] = {"url": download["url"], "sha256": download["sha256"],
                      "subjects": sorted(chosen or download["subjects"]),
                      "all_subjects": None if chosen else download["subjects"],
                      "where": f"datasets.{name}.download"}
    return plans


def raw_subjects(spec):
    """Sorted subject ids of a resolved dataset, from its raw file names; for a raw folder still
    to be downloaded, the subjects the download is checked to deliver (`subjects`, else
    `download.subjects`)."""
    if spec["source"] == "pamap2":
        if download_target(spec) is not None:
            return sorted(spec.get("subjects") or spec["download"]["subjects"])
        return [s for s, _ in pamap2.list_subject_files(spec["raw"], spec.get("subjects"))]
    return sorted({s for s, _, _, _ in geneactiv.list_window_files(spec["raw"])})


def fold_names(spec):
    """Result folder names of a resolved dataset, known before its windows are built: the split
    kind (`predefined`, `random`, `holdout`), or for leave-one-subject-out `fold0`... in the
    order of the subject ids in the raw file names."""
    kind = spec["split"]["kind"]
    return split_fold_names(kind, len(raw_subjects(spec)) if kind == "loso" else 0)


def check_split_subjects(name, spec):
    """Subjects named by the split must have raw files (read from the raw folder's names)."""
    named = spec["split"].get("test_subjects")
    if not named:
        return
    available = raw_subjects(spec)
    missing = sorted(set(named) - set(available))
    if missing:
        raise ConfigError(f"datasets.{name}.split.test_subjects: no raw files for subject(s) "
                          f"{missing} in {spec['raw']} (subjects there: {available})")
    if len(available) - len(named) < 2:
        raise ConfigError(f"datasets.{name}.split.test_subjects: {named} leave fewer than 2 of the "
                          f"{len(available)} subjects for training and validation")


def series_length(spec):
    return SERIES_LENGTH.get(spec["source"], spec.get("window"))


def check_config(config):
    """Resolve every dataset in place; check the image size against every window length."""
    for key, value in non_finite_numbers(config):
        raise ConfigError(f"{key}: {value} is not a finite number")
    datasets = config.get("datasets") or {}
    if not datasets:
        raise ConfigError("datasets: at least one dataset is required")
    for name, spec in datasets.items():
        datasets[name] = resolve_dataset(name, spec)
    for arch in config["teachers"]["archs"]:
        check_arch(arch, "teachers.archs")
    check_students(config)
    check_reference(config)
    check_headline(config)
    size = config["images"]["size"]
    parts = {part for encoding in config["images"]["methods"] for part in encoding_parts(encoding)}
    for name, spec in datasets.items():
        length = series_length(spec)
        if size > length:
            raise ConfigError(f"images.size: {size} is larger than the window length "
                              f"{length} of dataset '{name}'")
        if "pi" in parts:
            if length < PI_MIN_LENGTH:
                raise ConfigError(f"images.methods: pi needs windows of at least {PI_MIN_LENGTH} samples, "
                                  f"dataset '{name}' has {length}")
    return config


def check_arch(name, key):
    try:
        parse_arch(name)
    except ConfigError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def check_students(config):
    """Students can only learn from teachers the config trains; fills teacher_archs."""
    students, teachers = config["students"], config["teachers"]
    check_arch(students["arch"], "students.arch")
    if students["teacher_archs"] is None:
        students["teacher_archs"] = list(teachers["archs"])
    for arch in students["teacher_archs"]:
        check_arch(arch, "students.teacher_archs")
    missing = [a for a in students["teacher_archs"] if a not in teachers["archs"]]
    if missing:
        raise ConfigError(f"students.teacher_archs: {missing} are not in teachers.archs {teachers['archs']}")
    paired = students.get("paired_images")
    unknown = [e for e in paired or [] if e not in config["images"]["methods"]]
    if unknown:
        raise ConfigError(f"students.paired_images: {unknown} not in images.methods "
                          f"{config['images']['methods']}")
    needed = {m for name in students["methods"] for m in method(name).teachers}
    absent = sorted(needed - set(teachers["modalities"]))
    if absent:
        raise ConfigError(f"students.methods need {absent} teachers, but teachers.modalities is "
                          f"{teachers['modalities']}")
    check_alphas(students["alphas"])
    seeds = students["seeds"] if students["teacher_seed"] == "same" else [students["teacher_seed"]]
    if needed and set(seeds) - set(teachers["seeds"]):
        raise ConfigError(f"students need teachers of seed(s) {sorted(set(seeds) - set(teachers['seeds']))} "
                          f"(students.teacher_seed: {students['teacher_seed']!r}), not in teachers.seeds")


def check_alphas(alphas):
    """Each α names a result folder (alpha<tag>): two values with one folder are refused."""
    first = {}
    for alpha in alphas:
        tag = alpha_tag(alpha)
        if tag in first:
            raise ConfigError(f"students.alphas: {first[tag]!r} and {alpha!r} are the same α "
                              f"(both alpha{tag}); list it once")
        first[tag] = alpha


def check_reference(config):
    """Every report.reference entry names a row and columns this config's tables have, once; fills
    in each entry's images (its image teacher's encoding, '' where it has none)."""
    for dataset, block in (config.get("report", {}).get("reference") or {}).items():
        if dataset not in config["datasets"]:
            raise ConfigError(f"report.reference.{dataset}: no such dataset (datasets: "
                              f"{', '.join(config['datasets'])})")
        seen = {}
        for i, entry in enumerate(block["values"]):
            key = f"report.reference.{dataset}.values[{i}]"
            check_reference_entry(config, key, entry)
            row = (entry["method"], entry["images"], None if "alpha" not in entry else round(entry["alpha"], 9))
            if row in seen:
                raise ConfigError(f"{key}: the same row as {seen[row]}")
            seen[row] = key


def check_reference_entry(config, key, entry):
    students, encodings = config["students"], config["images"]["methods"]
    paired = students.get("paired_images") or encodings
    name = entry["method"]
    if name in TEACHER_ROWS:
        if TEACHER_ROWS[name] not in config["teachers"]["modalities"]:
            raise ConfigError(f"{key}: method '{name}' is not run by this config (teachers.modalities: "
                              f"{config['teachers']['modalities']})")
        teachers, grid_alpha, distilled = (TEACHER_ROWS[name],), False, False
        archs, arch_key = config["teachers"]["archs"], "teachers.archs"
    else:
        if name not in students["methods"]:
            raise ConfigError(f"{key}: method '{name}' is not run by this config (students.methods: "
                              f"{', '.join(students['methods'])}; teachers: {', '.join(TEACHER_ROWS)})")
        record = method(name)
        teachers, grid_alpha, distilled = record.teachers, record.alpha_grid, bool(record.teachers)
        archs, arch_key = students["teacher_archs"], "students.teacher_archs"
    if "gaf" in teachers:
        allowed = paired if len(teachers) > 1 else encodings
        entry.setdefault("images", allowed[0])
        if entry["images"] not in allowed:
            raise ConfigError(f"{key}: images '{entry['images']}': this config runs '{name}' with "
                              f"{', '.join(allowed)}")
    elif entry.setdefault("images", "") != "":
        raise ConfigError(f"{key}: '{name}' has no image teacher; remove images")
    if grid_alpha:
        if "alpha" not in entry:
            raise ConfigError(f"{key}: '{name}' runs for each students.alphas entry; say which (alpha)")
        if not any(abs(entry["alpha"] - a) < 1e-9 for a in students["alphas"]):
            raise ConfigError(f"{key}: alpha {entry['alpha']} is not run by this config "
                              f"(students.alphas: {students['alphas']})")
    elif "alpha" in entry:
        raise ConfigError(f"{key}: '{name}' has no α grid; remove alpha")
    if "lambda" in entry and not distilled:
        raise ConfigError(f"{key}: '{name}' is not distilled; remove lambda")
    if "lambda" in entry and abs(entry["lambda"] - students["kd"]["lambda"]) > 1e-9:
        raise ConfigError(f"{key}: lambda {entry['lambda']} is not run by this config "
                          f"(students.kd.lambda: {students['kd']['lambda']})")
    unknown = [a for a in entry["accuracy"] if a not in archs]
    if unknown:
        raise ConfigError(f"{key}: teacher architecture(s) {unknown} not in {arch_key} {list(archs)}")


SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def training_defaults(schema_path=SCHEMA):
    """{key: default} of the config schema's `training:` section (gafkd.train.engine.TrainSettings
    takes them from here where no validated config is at hand)."""
    schema = load_schema(str(schema_path))
    return {key: spec["default"] for key, spec in schema["properties"]["training"]["properties"].items()
            if "default" in spec}


def check_config_values(config, schema_path=SCHEMA):
    """The checks of a config as read and merged (the workflow's, with --config overrides
    applied): the schema, with the key that breaks it; its defaults filled in (in place); the
    datasets' sources and the image size. Returns the config."""
    from snakemake.utils import validate

    problem = schema_errors(config, schema_path)
    if problem:
        raise ConfigError(problem)
    validate(config, str(schema_path))
    check_config(config)
    return config


def check_config_files(paths, schema_path=SCHEMA):
    """Every check the workflow makes before any job, on config files merged in order (later ones
    override, as Snakemake's --configfile): each file's YAML (with the line of a syntax error,
    which Snakemake does not give), the schema (with the key), the source checks and the subjects
    the split names. Returns the config with its defaults."""
    config = {}
    for path in paths:
        loaded = load_yaml(path)
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a config file holds a mapping of keys, not {type(loaded).__name__}")
        merge_config(config, loaded)
    where = ", ".join(str(path) for path in paths)
    try:
        check_config_values(config, schema_path)
        for name, spec in config["datasets"].items():
            check_split_subjects(name, spec)
            fold_names(spec)
    except GafkdError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return config


def check_config_file(path, schema_path=SCHEMA):
    """check_config_files of one file."""
    return check_config_files([path], schema_path)


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m gafkd.config",
        description="Check config files as the workflow does before any job (YAML, schema, "
                    "sources, splits); each is checked on its own.")
    parser.add_argument("configs", nargs="+", metavar="CONFIG", help="a config file (YAML)")
    args = parser.parse_args(argv)
    status = 0
    for argument in args.configs:
        try:
            check_config_file(argument)
            print(f"{argument}: valid")
        except ConfigError as error:
            print(error, file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
