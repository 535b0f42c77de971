"""A dataset's settings with its source's defaults filled in, checked against the reader that
reads them (channel names, protocol, class map, download) and its split kind."""

import copy
import os

from gafkd.data import download as raw_download
from gafkd.data.readers import geneactiv, pamap2
from gafkd.data.windowset import parse_class_map
from gafkd.errors import ConfigError

REQUIRED = object()
COMMON_OPTIONS = {"standardize": "mean_window_std"}
SOURCE_OPTIONS = {
    "basicmotions": {**COMMON_OPTIONS},
    "geneactiv_mat": {"raw": REQUIRED, "window": REQUIRED, "sampling_rate_hz": geneactiv.SAMPLING_RATE_HZ,
                      "channels": None, "class_map": None, **COMMON_OPTIONS},
    "pamap2": {"raw": REQUIRED, **pamap2.DEFAULTS, "class_map": None, "subjects": None,
               "download": None, **COMMON_OPTIONS},
}
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
    channels = resolved.get("channels")
    if isinstance(channels, list):
        twice = sorted({str(c) for c in channels if channels.count(c) > 1})
        if twice:
            raise ConfigError(f"{where}.channels: {', '.join(twice)} named more than once; name each "
                              f"channel once")
    if source == "pamap2":
        try:
            pamap2.resolve_channels(resolved["channels"])
        except ConfigError as exc:
            raise ConfigError(f"{where}.channels: {exc}") from None
        try:
            pamap2.check_protocol(resolved["protocol"], resolved["channels"])
        except ConfigError as exc:
            raise ConfigError(f"{where}.protocol: {exc}") from None
        resolved["download"] = raw_download.resolve(resolved["download"], f"{where}.download")
        folder, raw_name = os.path.split(os.path.normpath(resolved["raw"]))
        if resolved["download"] is not None and (raw_name != raw_download.RAW_NAME or not folder):
            raise ConfigError(f"{where}.raw: the download unpacks PAMAP2's {raw_download.RAW_NAME}/ "
                              f"and Optional/ folders side by side in the dataset's folder, so raw "
                              f"must name a folder called {raw_download.RAW_NAME} inside it (e.g. "
                              f"data/PAMAP2_Dataset/Protocol), not {resolved['raw']}")
    if resolved.get("class_map") is not None:
        classes = parse_class_map(resolved["class_map"], f"{where}.class_map")
        if source == "pamap2":
            pamap2.check_activity_ids(classes, f"{where}.class_map")
    split = resolved.setdefault("split", {})
    split.setdefault("kind", DEFAULT_SPLIT_KIND[source])
    if split["kind"] == "predefined" and source != "basicmotions":
        raise ConfigError(f"{where}.split.kind: 'predefined' needs a source with a published "
                          f"test set (basicmotions), not '{source}'")
    if split["kind"] in SUBJECT_SPLITS and source == "basicmotions":
        raise ConfigError(f"{where}.split.kind: '{split['kind']}' splits by subject, but "
                          f"basicmotions has no subject ids")
    if split.get("validation") == "test" and split["kind"] not in SUBJECT_SPLITS:
        raise ConfigError(f"{where}.split.validation: 'test' picks each fold's checkpoint on its test "
                          f"subject(s), and split kind '{split['kind']}' has none (use loso or holdout)")
    if "test_subjects" in split and split["kind"] != "holdout":
        raise ConfigError(f"{where}.split.test_subjects: applies to split kind 'holdout' only, "
                          f"not '{split['kind']}'")
    if split["kind"] in ("holdout", "random") and split["val_fraction"] + split["test_fraction"] >= 1:
        raise ConfigError(f"{where}.split: val_fraction + test_fraction must be below 1 "
                          f"(got {split['val_fraction']} + {split['test_fraction']})")
    return resolved
