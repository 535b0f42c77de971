"""WideResNet names (torch-free, so the workflow can check them when it parses the config)."""

import re

from gafkd.errors import ConfigError

# A WideResNet name, as result paths, wildcards and the config schema spell it.
ARCH_REGEX = r"wrn[0-9]+-[0-9]+"
ARCH_PATTERN = re.compile(rf"^{ARCH_REGEX}$")
ARCHITECTURES = ("wrn16-1", "wrn16-3", "wrn28-1", "wrn28-3")


def parse_arch(name):
    """'wrn16-3' -> (16, 3); any WRN-d-k with d = 6n + 4 is accepted."""
    match = ARCH_PATTERN.match(str(name))
    if match is None:
        raise ConfigError(f"unknown architecture '{name}' (expected wrn<depth>-<width>, "
                          f"e.g. {', '.join(ARCHITECTURES)})")
    depth, width = (int(part) for part in str(name)[len("wrn"):].split("-"))
    if depth < 10 or (depth - 4) % 6:
        raise ConfigError(f"architecture '{name}': depth {depth} is not 6n+4; use 10, 16, 22, "
                          f"28, ... (e.g. {', '.join(ARCHITECTURES)})")
    if width < 1:
        raise ConfigError(f"architecture '{name}': width must be at least 1")
    return depth, width
