"""Errors that name the file, field or value at fault."""


class GafkdError(Exception):
    """Base class of the errors gafkd raises for bad input."""


class ConfigError(GafkdError, ValueError):
    """A configuration value is missing, of the wrong kind or inconsistent."""


class InputError(GafkdError, ValueError):
    """A raw or intermediate file is missing, malformed or unusable."""


REBUILD = "delete it and Snakemake rebuilds it"


def reason(exc):
    """The first line of an exception's message (library messages run to many lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def damaged(path, what, problem):
    return InputError(f"{path}: {what} is damaged ({problem}); {REBUILD}")


def check_identity(path, what, found, expected):
    """InputError naming every field of `expected` that `found` (a file's record) disagrees with."""
    wrong = [f"{key} {found[key]}, expected {value}" if key in found
             else f"no {key} recorded, expected {value}"
             for key, value in expected.items() if str(found.get(key)) != str(value)]
    if wrong:
        held = ", ".join(f"{key} {found[key]}" for key in expected if key in found)
        raise InputError(f"{path}: holds {what} of {held or 'unknown origin'}, not the one this job "
                         f"expects ({'; '.join(wrong)}); {REBUILD}")
