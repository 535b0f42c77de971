"""Image encodings by name (torch-free: the config check and the workflow read them): each
entry of `images.methods` is one encoding (gafkd.images.encode) or a stack of several
joined by '+' (gafkd.images.cache: each sensor channel's encodings as consecutive image channels)."""

from gafkd.errors import ConfigError

IMAGE_METHODS = ("gasf", "gadf", "qgasf", "qgadf", "mtf", "pi")
ENCODING_REGEX = rf"(?:{'|'.join(IMAGE_METHODS)})(?:\+(?:{'|'.join(IMAGE_METHODS)}))*"

def encoding_parts(name, key="images.methods"):
    """The encodings of an image method: ('gasf',) or, for a stack 'gasf+gadf+mtf', each part
    in order. Unknown parts, empty parts and a part named twice are config errors naming `key`."""
    parts = tuple(str(name).split("+"))
    unknown = [part for part in parts if part not in IMAGE_METHODS]
    if unknown:
        raise ConfigError(f"{key}: unknown encoding {', '.join(repr(u) for u in unknown)} in '{name}' "
                          f"(known: {', '.join(IMAGE_METHODS)}; a stack joins them with '+', "
                          f"e.g. gasf+gadf+mtf)")
    twice = sorted({part for part in parts if parts.count(part) > 1})
    if twice:
        raise ConfigError(f"{key}: the stack '{name}' names {', '.join(twice)} more than once")
    return parts


# Persistence images (gafkd.images.persistence): a finite H0 pair needs two local minima with a
# higher sample between them, so windows of at least 3 samples.
PI_MIN_LENGTH = 3

QGAF_METHODS = ("qgasf", "qgadf")
QGAF_SCALINGS = ("minmax", "standard", "none")
QGAF_DEFAULTS = {"scaling": "minmax", "shots": None, "seed": 0}


def qgaf_settings(qgaf, key="images.qgaf"):
    """images.qgaf with defaults filled in; a bad value is a ConfigError naming its key."""
    settings = {**QGAF_DEFAULTS, **(qgaf or {})}
    unknown = sorted(set(settings) - set(QGAF_DEFAULTS))
    if unknown:
        raise ConfigError(f"{key}: unknown setting {', '.join(unknown)} (known: {', '.join(QGAF_DEFAULTS)})")
    if settings["scaling"] not in QGAF_SCALINGS:
        raise ConfigError(f"{key}.scaling: '{settings['scaling']}' is not one of {', '.join(QGAF_SCALINGS)}")
    for name, least, meaning in (("shots", 1, "null (the exact expectation) or a whole number of shots"),
                                 ("seed", 0, "a whole number")):
        value = settings[name]
        if value is None and name == "shots":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(f"{key}.{name}: {value!r} must be {meaning} of at least {least}")
    return settings


def qgaf_identity(qgaf):
    """What of images.qgaf changes a Q-GAF cache: the scaling, the shots, and their seed with shots."""
    settings = qgaf_settings(qgaf)
    return {key: settings[key] for key in (("scaling", "shots", "seed") if settings["shots"] else ("scaling", "shots"))}


def encoding_label(encoding):
    """How tables name an encoding: 'GASF', 'GASF+GADF+MTF', 'PI', 'Q-GASF+Q-GADF'."""
    return "+".join(f"Q-{part[1:].upper()}" if part in QGAF_METHODS else part.upper()
                    for part in encoding.split("+"))


def encoding_order(encoding):
    """Sort key of encodings: by their parts in IMAGE_METHODS order (gasf, gasf+gadf+mtf, mtf, pi)."""
    return tuple(IMAGE_METHODS.index(part) for part in encoding.split("+")) if encoding else ()
