"""Errors that name the file, field or value at fault."""


class GafkdError(Exception):
    """Base class of the errors gafkd raises for bad input."""


class ConfigError(GafkdError, ValueError):
    """A configuration value is missing, of the wrong kind or inconsistent."""


class InputError(GafkdError, ValueError):
    """A raw or intermediate file is missing, malformed or unusable."""
