import pytest
import torch

from gafkd.archs import parse_arch
from gafkd.errors import ConfigError
from gafkd.train.models import build_model


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_published_parameter_counts():
    # Zagoruyko & Komodakis, CIFAR-10: WRN-28-10 has 36.5M parameters, WRN-16-1 0.175M.
    assert n_params(build_model("wrn28-10", 3, 10, dims=2)) == 36_479_194
    assert round(n_params(build_model("wrn16-1", 3, 10, dims=2)) / 1e6, 3) == 0.175


def test_1d_and_2d_share_the_structure():
    # A 1-D kernel of 3 has a third of a 3x3 kernel's weights; everything else is equal.
    one = build_model("wrn16-3", 6, 12, dims=1)
    two = build_model("wrn16-3", 6, 12, dims=2)
    conv1d = sum(p.numel() for n, p in one.named_parameters() if p.dim() == 3 and p.shape[-1] == 3)
    conv2d = sum(p.numel() for n, p in two.named_parameters() if p.dim() == 4 and p.shape[-1] == 3)
    assert conv2d == 3 * conv1d
    assert n_params(two) - conv2d == n_params(one) - conv1d


@pytest.mark.parametrize("arch,widths", [("wrn16-1", (16, 32, 64)), ("wrn28-3", (48, 96, 192))])
def test_output_shapes_signals(arch, widths):
    logits, groups = build_model(arch, 40, 12, dims=1)(torch.randn(2, 40, 100))
    assert logits.shape == (2, 12)
    assert [tuple(g.shape) for g in groups] == [(2, widths[0], 100), (2, widths[1], 50), (2, widths[2], 25)]


def test_output_shapes_images():
    logits, groups = build_model("wrn16-1", 3, 14, dims=2)(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 14)
    assert [tuple(g.shape) for g in groups] == [(2, 16, 64, 64), (2, 32, 32, 32), (2, 64, 16, 16)]


def test_depth_sets_blocks_per_group():
    assert [len(g) for g in build_model("wrn28-1", 3, 4, dims=1).groups] == [4, 4, 4]
    assert [len(g) for g in build_model("wrn16-1", 3, 4, dims=1).groups] == [2, 2, 2]


@pytest.mark.parametrize("name,match", [("resnet18", "unknown architecture 'resnet18'"),
                                        ("wrn18-1", "depth 18 is not 6n\\+4"),
                                        ("wrn16-0", "width must be at least 1")])
def test_bad_architecture_names(name, match):
    with pytest.raises(ConfigError, match=match):
        parse_arch(name)
    with pytest.raises(ConfigError, match=match):
        build_model(name, 3, 4, dims=1)


@pytest.mark.parametrize("arch, channels, shape, classes", [
    ("wrn16-1", 3, (500,), 14), ("wrn28-3", 40, (33,), 12), ("wrn22-2", 2, (7,), 3),
    ("wrn10-2", 6, (16, 16), 4), ("wrn16-3", 9, (31, 17), 5), ("wrn28-1", 3, (64, 64), 14)])
def test_the_counted_cost_is_what_torch_counts_in_a_forward(arch, channels, shape, classes):
    """gafkd.archs.wrn_cost (torch-free, for the workflow's job sizes) against torch's FLOP counter
    on a forward of the network on the meta device: FLOPs, parameters and group output sizes."""
    from torch.utils.flop_counter import FlopCounterMode

    from gafkd.archs import wrn_cost

    with torch.device("meta"):
        model = build_model(arch, channels, classes, len(shape))
        x = torch.zeros((1, channels, *shape))
    with FlopCounterMode(display=False) as counter:
        _, groups = model(x)
    assert wrn_cost(arch, channels, shape, classes) == (
        counter.get_total_flops(), sum(p.numel() for p in model.parameters()),
        tuple(g[0].numel() for g in groups))


def test_the_cost_of_a_network_on_3d_inputs_is_refused():
    from gafkd.archs import wrn_cost

    with pytest.raises(ValueError, match="1-D or 2-D inputs, not 3-D"):
        wrn_cost("wrn16-1", 3, (4, 4, 4), 2)
