"""WideResNet names and costs (torch-free, so the workflow can check names and count each job's
work when it parses the config)."""

import math
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


def wrn_layout(arch):
    """WRN-d-k's channel widths (stem, groups 1-3) and, group by group, each basic block's
    (in_planes, out_planes, stride): n = (d - 4) / 6 blocks per group, strides 1, 2, 2 at each
    group's first block. The one description the networks (gafkd.train.models, .packed) and
    their cost (wrn_cost) are built from."""
    depth, width = parse_arch(arch)
    widths = [16, 16 * width, 32 * width, 64 * width]
    groups = [[(widths[g] if b == 0 else widths[g + 1], widths[g + 1], stride if b == 0 else 1)
               for b in range((depth - 4) // 6)] for g, stride in enumerate((1, 2, 2))]
    return widths, groups


def wrn_cost(arch, channels, shape, classes):
    """(forward FLOPs of one input, parameters, values of each group's output) of gafkd.train.models'
    WideResNet `arch` on inputs of `channels` x `shape` (1-D or 2-D), counted as
    torch.utils.flop_counter counts a forward (2 per multiply-add of each convolution and the
    linear layer), without torch: the workflow asks it of every training job while it parses."""
    widths, groups = wrn_layout(arch)
    if len(shape) not in (1, 2):
        raise ValueError(f"a WideResNet takes 1-D or 2-D inputs, not {len(shape)}-D ({shape})")
    kernel = 3 ** len(shape)
    flops, parameters, feature_sizes = 0, 0, []

    def conv(in_planes, out_planes, spatial, stride, size):
        nonlocal flops, parameters
        out = tuple((s - 1) // stride + 1 for s in spatial)    # 3-wide padded or 1-wide: the same
        flops += 2 * math.prod(out) * out_planes * in_planes * size
        parameters += out_planes * in_planes * size
        return out

    spatial = conv(channels, widths[0], shape, 1, kernel)
    for blocks in groups:
        for in_planes, out_planes, stride in blocks:
            parameters += 2 * in_planes + 2 * out_planes                     # the block's two BNs
            out = conv(in_planes, out_planes, spatial, stride, kernel)
            conv(out_planes, out_planes, out, 1, kernel)
            if in_planes != out_planes or stride != 1:
                conv(in_planes, out_planes, spatial, stride, 1)              # the shortcut
            spatial = out
        feature_sizes.append(blocks[-1][1] * math.prod(spatial))
    flops += 2 * widths[3] * classes
    parameters += 2 * widths[3] + widths[3] * classes + classes              # the last BN, the linear layer
    return flops, parameters, tuple(feature_sizes)
