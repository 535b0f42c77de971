"""K WideResNets of one architecture fused into one network: a pack of student runs trained in
one job (as HFTA fuses models: every convolution grouped by member, BatchNorm per member's
channels, a grouped classifier).

Member k owns channels [k·C, (k+1)·C) of every layer, so its outputs depend on its own weights
and inputs alone, and the gradient of the sum of the members' losses is each member's own. Every
packed tensor (weights, BatchNorm statistics, SGD momentum) is the K members' tensors of the
solo network stacked along dimension 0, so a member's part is a view, and a member's state
dicts are exactly a solo run's (gafkd.train.models.WideResNet): its model.pt and resume.pt are a solo
run's files.

Shapes: inputs (B, K·C, ...) — member k's batch in channels [k·C, (k+1)·C); logits (B, K,
classes); group outputs (B, K·C_g, ...). Solo adapts a WideResNet to the same interface with
K = 1, so that gafkd.train.engine trains both the same way.

Three ways to compute the same network (`fusion`); the parameters, their names, shapes and
layout are the same in all three, only the convolutions' kernels differ:

- "grouped" runs every layer once for all the members: grouped convolutions (groups = K), one
  kernel launch where K solo networks would launch K. The default on a GPU for 2-D packs.
- "gemm" (1-D packs only) is "grouped" with every convolution computed as K independent GEMMs
  (gemm_conv1d: each member's input unfolded, then one torch.bmm over the K members). On a GPU,
  deterministic cuDNN picks slow kernels for grouped tiny 1-D convolutions and picks other ones
  as K changes (K = 2 and 4 were slower per step than K = 1); a batched GEMM is the same kernel
  for every K but its batch count, and on the CPU a member's numbers are the same bits at every
  K. Autograd keeps the unfolded inputs (a kernel-3 convolution's input three times): about
  2.3x grouped's activations. The default on a GPU for 1-D packs.
- "members" runs the solo network K times, each time on views of member k's weights and
  statistics, so each member computes exactly its solo run's kernels (bit-identical to the solo
  run). On a CPU a step is compute-bound: the grouped kernels are slower than K solo ones, and
  unfold + bmm slower still (WRN16-1, K = 8, two cores: 1.7-1.9x members' step time;
  benchmarks/student_pack.py --fusion), so by default a pack on the CPU runs its members one by
  one.

The default (fusion=None) is chosen from the inputs' device at every forward: resolve_fusion."""

import copy

import torch
from torch.func import functional_call
from torch import nn
from torch.nn import functional as F

from gafkd.archs import wrn_layout
from gafkd.train.models import WideResNet, _layers


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


def gemm_conv1d(x, weight, stride, padding, members):
    """A grouped 1-D convolution without bias (groups = members) as `members` GEMMs: x (B, K·Ci, L),
    weight (K·Co, Ci, w) -> (B, K·Co, L_out). Member k's columns (Ci·w, B·L_out) are its input
    unfolded; one torch.bmm over the K members multiplies each by its weight (Co, Ci·w), so a
    member's numbers come from the same GEMM, of the same shape, whatever K is."""
    batch, (out_channels, in_channels, width) = len(x), weight.shape
    if padding:
        x = F.pad(x, (padding, padding))
    windows = x.unfold(2, width, stride)                          # (B, K·Ci, L_out, w), a view
    length = windows.shape[2]
    columns = (windows.view(batch, members, in_channels, length, width)
               .permute(1, 2, 4, 0, 3).reshape(members, in_channels * width, batch * length))
    out = torch.bmm(weight.view(members, out_channels // members, in_channels * width), columns)
    return out.view(members, -1, batch, length).permute(2, 0, 1, 3).reshape(batch, out_channels, length)


class PackedConv1d(nn.Conv1d):
    """A grouped nn.Conv1d (groups = the members) that computes as gemm_conv1d while `gemm` is set
    (the pack sets it from its fusion at every forward): the same parameter, another kernel."""

    gemm = False

    def forward(self, x):
        if self.gemm:
            return gemm_conv1d(x, self.weight, self.stride[0], self.padding[0], self.groups)
        return super().forward(x)


def _packed_layers(dims):
    conv, norm = _layers(dims)
    return (PackedConv1d if dims == 1 else conv), norm


def resolve_fusion(fusion, device, dims):
    """The fusion a pack of `dims`-D networks computes with on `device` (a torch.device or its
    type): `fusion` itself when given; by default "members" on a CPU, elsewhere "gemm" for 1-D
    and "grouped" for 2-D networks."""
    if fusion is not None:
        return fusion
    if torch.device(device).type == "cpu":
        return "members"
    return "gemm" if dims == 1 else "grouped"


class PackedBlock(nn.Module):
    """gafkd.train.models.BasicBlock for K members (grouped convolutions, per-member channels)."""

    def __init__(self, members, dims, in_planes, out_planes, stride):
        super().__init__()
        conv, norm = _packed_layers(dims)
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

    FUSIONS = ("grouped", "gemm", "members")

    def __init__(self, arch, in_channels, num_classes, dims, members, fusion=None):
        super().__init__()
        widths, groups = wrn_layout(arch)
        if fusion not in (None, *self.FUSIONS):
            raise ValueError(f"fusion must be one of {self.FUSIONS} or None (by device), got {fusion!r}")
        if fusion == "gemm" and dims != 1:
            raise ValueError(f"fusion 'gemm' computes 1-D convolutions only, not a dims={dims} network's")
        self.arch, self.dims, self.members, self.fusion = arch, dims, int(members), fusion
        # False: the loss reads logits only, so computed one by one the members' group outputs
        # are not stacked (a copy of every member's activations)
        self.group_outputs = True
        self.in_channels, self.num_classes = in_channels, num_classes
        conv, norm = _packed_layers(dims)
        k = self.members
        self.conv1 = conv(k * in_channels, k * widths[0], 3, padding=1, bias=False, groups=k)
        self.groups = nn.ModuleList(nn.Sequential(*(PackedBlock(k, dims, *block) for block in blocks))
                                    for blocks in groups)
        self.bn = norm(k * widths[3])
        self.fc = GroupedLinear(k, widths[3], num_classes)

        with torch.device("meta"):      # the solo network's layers, without storage of their own
            self.__dict__["_solo"] = WideResNet(arch, in_channels, num_classes, dims)

    def device_fusion(self, device):
        """The fusion this pack computes with on `device`."""
        return resolve_fusion(self.fusion, device, self.dims)

    def forward(self, x):
        fusion = self.device_fusion(x.device)
        if fusion == "members":
            return self._members_one_by_one(x)
        for conv in self.modules():
            if isinstance(conv, PackedConv1d):
                conv.gemm = fusion == "gemm"
        return WideResNet.forward(self, x)     # the solo forward: its grouped layers do every member

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

    def member_state(self, k, host=True):
        """Member k's state_dict, as a solo WideResNet's (copies, on the CPU; with host False on
        the model's device, without waiting for it)."""
        copy = _host_copy if host else _device_copy
        return {name: copy(member_part(tensor, self.members, k)) for name, tensor in self.state_dict().items()}

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


def _device_copy(tensor):
    """A contiguous copy where the tensor lives (asynchronous on a GPU)."""
    return tensor.detach().clone(memory_format=torch.contiguous_format)


def host_state(state):
    """A state_dict's tensors as _host_copy makes them (a no-op copy for those on the CPU)."""
    return {name: _host_copy(tensor) for name, tensor in state.items()}


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

    def member_state(self, k, host=True):
        copy = _host_copy if host else _device_copy
        return {name: copy(tensor) for name, tensor in self.model.state_dict().items()}

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
