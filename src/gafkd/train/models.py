"""Wide residual networks (Zagoruyko & Komodakis) for 1-D signals and 2-D images.

WRN-d-k: d = 6n + 4, n pre-activation basic blocks per group, widths 16, 16k, 32k, 64k,
strides 1, 2, 2, then BN-ReLU, global average pooling and a linear layer. The forward pass
returns the logits and the three group outputs (used by similarity-preserving KD).
"""

from torch import nn
from torch.nn import functional as F

from gafkd.archs import wrn_layout


def _layers(dims):
    if dims == 1:
        return nn.Conv1d, nn.BatchNorm1d
    if dims == 2:
        return nn.Conv2d, nn.BatchNorm2d
    raise ValueError(f"dims must be 1 or 2, got {dims}")


class BasicBlock(nn.Module):
    """BN-ReLU-conv3-BN-ReLU-conv3 with a 1x1 convolution shortcut when shapes differ."""

    def __init__(self, dims, in_planes, out_planes, stride):
        super().__init__()
        conv, norm = _layers(dims)
        self.bn1 = norm(in_planes)
        self.conv1 = conv(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = norm(out_planes)
        self.conv2 = conv(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.shortcut = None
        if in_planes != out_planes or stride != 1:
            self.shortcut = conv(in_planes, out_planes, 1, stride=stride, bias=False)

    def forward(self, x):
        activated = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(activated))))
        return out + (x if self.shortcut is None else self.shortcut(activated))


class WideResNet(nn.Module):
    def __init__(self, arch, in_channels, num_classes, dims):
        super().__init__()
        widths, groups = wrn_layout(arch)
        self.arch, self.dims = arch, dims
        conv, norm = _layers(dims)
        self.conv1 = conv(in_channels, widths[0], 3, padding=1, bias=False)
        self.groups = nn.ModuleList(nn.Sequential(*(BasicBlock(dims, *block) for block in blocks))
                                    for blocks in groups)
        self.bn = norm(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x):
        out = self.conv1(x)
        group_outputs = []
        for group in self.groups:
            out = group(out)
            group_outputs.append(out)
        out = F.relu(self.bn(out))
        pooled = out.flatten(2).mean(dim=2)
        return self.fc(pooled), group_outputs


def build_model(arch, in_channels, num_classes, dims):
    return WideResNet(arch, in_channels, num_classes, dims)
