"""Image encodings by name (torch-free: the config check and the workflow read them): each
entry of `images.methods` is one encoding (gafkd.gaf, gafkd.persistence) or a stack of several
joined by '+' (gafkd.images: each sensor channel's encodings as consecutive image channels)."""

from gafkd.errors import ConfigError

IMAGE_METHODS = ("gasf", "gadf", "mtf", "pi")
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


def encoding_label(encoding):
    """How tables name an encoding: 'GASF', 'GASF+GADF+MTF', 'PI'."""
    return encoding.upper()


def encoding_order(encoding):
    """Sort key of encodings: by their parts in IMAGE_METHODS order (gasf, gasf+gadf+mtf, mtf, pi)."""
    return tuple(IMAGE_METHODS.index(part) for part in encoding.split("+")) if encoding else ()
