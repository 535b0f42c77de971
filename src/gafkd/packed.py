"""K WideResNets of one architecture fused into one network: a pack of student runs trained in
one job (as HFTA fuses models: every convolution grouped by member, BatchNorm per member's
channels, a grouped classifier).

Member k owns channels [k·C, (k+1)·C) of every layer, so its outputs depend on its own weights
and inputs alone, and the gradient of the sum of the members' losses is each member's own. Every
packed tensor (weights, BatchNorm statistics, SGD momentum) is the K members' tensors of the
solo network stacked along dimension 0, so a member's part is a view, and a member's state
dicts are exactly a solo run's (gafkd.models.WideResNet): its model.pt and resume.pt are a solo
run's files.

Shapes: inputs (B, K·C, ...) — member k's batch in channels [k·C, (k+1)·C); logits (B, K,
classes); group outputs (B, K·C_g, ...). Solo adapts a WideResNet to the same interface with
K = 1, so that gafkd.engine trains both the same way.

Two ways to compute the same network (`fusion`): "grouped" runs every layer once for all the
members (a GPU launches one kernel where it would launch K); "members" runs the solo network
K times, each time on views of member k's weights and statistics, so each member computes
exactly its solo run's kernels. On a CPU a step is compute-bound and the grouped kernels are
slower than K solo ones (benchmarks/student_pack.py), so by default a pack on the CPU runs its
members one by one and a pack on a GPU runs them grouped.
"""

import copy

import torch
from torch.func import functional_call
from torch import nn
from torch.nn import functional as F

from gafkd.archs import parse_arch
from gafkd.models import WideResNet, _layers


class GroupedLinear(nn.Module):
    """K linear layers side by side: (B, K·in) -> (B, K, out); weight (K·out, in)."""

    def __init__(self, members, in_features, out_features):
        super().__init__()
        self.members, self.in_features, self.out_features = members, in_features, out_features
        self.weight = nn.Parameter(torch.randn(members * out_features, in_features) * in_features**-0.5)
        self.bias = nn.Parameter(torch.zeros(members * out_features))

    def forward(self, x):
        weight = self.weight.view(self.members, self.out_features, self.in_features)
        out = torch.einsum("bki,koi->bko", x.view(len(x), self.members, self.in_features), weight)
        return out + self.bias.view(self.members, self.out_features)


class PackedBlock(nn.Module):
    """gafkd.models.BasicBlock for K members (grouped convolutions, per-member channels)."""

    def __init__(self, members, dims, in_planes, out_planes, stride):
        super().__init__()
        conv, norm = _layers(dims)
        k = members
        self.bn1 = norm(k * in_planes)
        self.conv1 = conv(k * in_planes, k * out_planes, 3, stride=stride, padding=1, bias=False, groups=k)
        self.bn2 = norm(k * out_planes)
        self.conv2 = conv(k * out_planes, k * out_planes, 3, stride=1, padding=1, bias=False, groups=k)
        self.shortcut = None
        if in_planes != out_planes or stride != 1:
            self.shortcut = conv(k * in_planes, k * out_planes, 1, stride=stride, bias=False, groups=k)

    def forward(self, x):
        activated = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(activated))))
        return out + (x if self.shortcut is None else self.shortcut(activated))


class PackedWideResNet(nn.Module):
    """`members` copies of WideResNet(arch, in_channels, num_classes, dims), fused; the same
    parameter names and order as the solo network."""

    FUSIONS = ("grouped", "members")

    def __init__(self, arch, in_channels, num_classes, dims, members, fusion=None):
        super().__init__()
        depth, width = parse_arch(arch)
        if fusion not in (None, *self.FUSIONS):
            raise ValueError(f"fusion must be one of {self.FUSIONS} or None (by device), got {fusion!r}")
        self.arch, self.dims, self.members, self.fusion = arch, dims, int(members), fusion
        # False: the loss reads logits only, so computed one by one the members' group outputs
        # are not stacked (a copy of every member's activations)
        self.group_outputs = True
        self.in_channels, self.num_classes = in_channels, num_classes
        conv, norm = _layers(dims)
        k = self.members
        blocks = (depth - 4) // 6
        widths = [16, 16 * width, 32 * width, 64 * width]
        self.conv1 = conv(k * in_channels, k * widths[0], 3, padding=1, bias=False, groups=k)
        self.groups = nn.ModuleList()
        for g, stride in enumerate((1, 2, 2)):
            layers = [PackedBlock(k, dims, widths[g] if b == 0 else widths[g + 1], widths[g + 1],
                                  stride if b == 0 else 1) for b in range(blocks)]
            self.groups.append(nn.Sequential(*layers))
        self.bn = norm(k * widths[3])
        self.fc = GroupedLinear(k, widths[3], num_classes)

        with torch.device("meta"):      # the solo network's layers, without storage of their own
            self.__dict__["_solo"] = WideResNet(arch, in_channels, num_classes, dims)

    def forward(self, x):
        fusion = self.fusion or ("members" if x.device.type == "cpu" else "grouped")
        if fusion == "grouped":
            return WideResNet.forward(self, x)     # the solo forward: its grouped layers do every member
        return self._members_one_by_one(x)

    def _members_one_by_one(self, x):
        solo = self._solo.train(self.training)
        state = dict(self.named_parameters())
        state.update(self.named_buffers())
        counts = [t for t in state.values() if t.dim() == 0]      # BatchNorm's batches, shared
        logits, groups = [], []
        for k, inputs in enumerate(x.chunk(self.members, dim=1)):
            member = {name: torch.zeros_like(t) if t.dim() == 0 else member_part(t, self.members, k)
                      for name, t in state.items()}
            out, outs = functional_call(solo, member, (inputs.contiguous(),))
            logits.append(out)
            groups.append(outs)
        if self.training:
            for count in counts:
                count.add_(1)
        if not (self.training and self.group_outputs):          # evaluation reads logits only
            return torch.stack(logits, dim=1), []
        return torch.stack(logits, dim=1), [torch.cat(g, dim=1) for g in zip(*groups)]

    # ---- the engine's interface (Solo has the same) -----------------------------------------

    def join(self, rows):
        """Member-major rows (K·B, C, ...) — member k's batch is rows[k·B:(k+1)·B] — as the
        packed input (B, K·C, ...)."""
        per_member = rows.view(self.members, -1, *rows.shape[1:])
        return per_member.transpose(0, 1).reshape(per_member.shape[1], -1, *rows.shape[2:])

    def shared(self, x):
        """The same inputs (B, C, ...) for every member (evaluation)."""
        return x.repeat(1, self.members, *([1] * (x.dim() - 2)))

    def member_major(self, logits, groups):
        """Logits (K, B, classes) and group outputs [(K, B, C_g, ...)] of the packed outputs."""
        return logits.transpose(0, 1), [
            g.view(len(g), self.members, -1, *g.shape[2:]).transpose(0, 1) for g in groups]

    def member_state(self, k):
        """Member k's state_dict, as a solo WideResNet's (copies, on the CPU)."""
        return {name: _host_copy(member_part(tensor, self.members, k))
                for name, tensor in self.state_dict().items()}

    def load_member_state(self, k, state):
        """Set member k's weights and statistics from a solo WideResNet's state_dict."""
        with torch.no_grad():
            for name, tensor in self.state_dict().items():
                member_part(tensor, self.members, k).copy_(state[name])

    def member_optimizer_state(self, optimizer, k):
        """Member k's part of an SGD optimizer's state_dict, as a solo run's optimizer would hold
        it (momentum buffers sliced; parameters numbered in the same order)."""
        full = optimizer.state_dict()
        return {"state": {i: {key: member_part(value, self.members, k).cpu().clone()
                                 if torch.is_tensor(value) and value.dim() else value
                              for key, value in state.items()} for i, state in full["state"].items()},
                "param_groups": copy.deepcopy(full["param_groups"])}

    def load_optimizer_states(self, optimizer, states):
        """Load the members' solo optimizer state_dicts (one per member) into `optimizer`."""
        first = states[0]
        merged = {i: {key: torch.cat([s["state"][i][key] for s in states])
                      if torch.is_tensor(value) and value.dim() else value
                      for key, value in state.items()} for i, state in first["state"].items()}
        optimizer.load_state_dict({"state": merged, "param_groups": copy.deepcopy(first["param_groups"])})


def _host_copy(tensor):
    """A contiguous CPU copy: a saved state is the same bytes whatever layout it trained in."""
    return tensor.detach().to("cpu", memory_format=torch.contiguous_format, copy=True)


def member_part(tensor, members, k):
    """Member k's part of a packed tensor (a view); a 0-d tensor (BatchNorm's step count) is
    shared by the members."""
    if tensor.dim() == 0:
        return tensor
    return tensor.view(members, -1, *tensor.shape[1:])[k]


class Solo:
    """A WideResNet behind PackedWideResNet's interface, with one member."""

    members = 1

    def __init__(self, model):
        self.model = model

    def join(self, rows):
        return rows

    def shared(self, x):
        return x

    def member_major(self, logits, groups):
        return logits[None], [g[None] for g in groups]

    def member_state(self, k):
        return {name: _host_copy(tensor) for name, tensor in self.model.state_dict().items()}

    def load_member_state(self, k, state):
        self.model.load_state_dict(state)

    def member_optimizer_state(self, optimizer, k):
        return optimizer.state_dict()

    def load_optimizer_states(self, optimizer, states):
        optimizer.load_state_dict(states[0])


def members_of(model):
    """The engine's view of `model`: itself when packed, else Solo(model)."""
    return model if isinstance(model, PackedWideResNet) else Solo(model)


def pack_models(models, fusion=None):
    """A PackedWideResNet holding the weights and statistics of solo WideResNets of one
    architecture, member k = models[k]."""
    first = models[0]
    if not all(isinstance(m, WideResNet) and (m.arch, m.dims) == (first.arch, first.dims) for m in models):
        raise ValueError("a pack's members must be WideResNets of one architecture")
    packed = PackedWideResNet(first.arch, first.conv1.in_channels, first.fc.out_features, first.dims,
                              len(models), fusion)
    for k, model in enumerate(models):
        packed.load_member_state(k, model.state_dict())
    return packed
