"""The network against the paper: parameter counts, map sizes, towers, depth, dropout placement, init."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from alexnet_lit.models import AlexNet, feature_map_sizes
from alexnet_lit.models.alexnet import kernel_counts

PAPER_COUNTS = {"two": 60_965_224, "one_half": 59_798_312, "one": 62_378_344}


@pytest.mark.parametrize("towers", sorted(PAPER_COUNTS))
def test_parameter_counts_match_the_paper(towers):
    net = AlexNet(num_classes=1000, towers=towers)
    assert sum(p.numel() for p in net.parameters()) == PAPER_COUNTS[towers]


@pytest.mark.parametrize("size", [224, 227])
@pytest.mark.parametrize("pool", ["overlap", "non_overlap"])
def test_feature_maps_are_55_27_13_6(size, pool):
    assert feature_map_sizes(size, pool) == {"conv1": 55, "pool1": 27, "pool2": 13, "pool5": 6}
    net = AlexNet(input_size=size, pool=pool, width=0.25, fc_units=16, num_classes=7)
    shapes = {name: shape for name, _, shape, _ in net.describe()}
    assert shapes["conv1"][1:] == (55, 55)
    assert shapes["pool1"][1:] == (27, 27)
    assert shapes["conv3"][1:] == (13, 13)
    assert shapes["pool5"][1:] == (6, 6)
    assert net(torch.randn(2, 3, size, size)).shape == (2, 7)


def test_describe_full_size_shapes():
    shapes = {n: s for n, _, s, _ in AlexNet().describe()}
    assert shapes["conv1"] == (96, 55, 55) and shapes["conv2"] == (256, 27, 27)
    assert shapes["conv5"] == (256, 13, 13) and shapes["fc6"] == (4096,) and shapes["fc8"] == (1000,)


def test_two_towers_are_separate_where_the_paper_says():
    """conv2/conv4/conv5 see only their own tower; conv3 and FC see both; LRN stays inside a tower."""
    net = AlexNet(towers="two", width=0.25, fc_units=16, num_classes=5, input_size=64).eval()
    convs = net.weighted_layers()
    assert [convs[f"conv{i}"].groups for i in range(1, 6)] == [1, 2, 1, 2, 2]
    lrn = net.features.lrn1
    x = torch.rand(1, 24, 8, 8)
    y = x.clone()
    y[:, 12:] *= 5  # change only tower 2's maps
    assert torch.equal(lrn(x)[:, :12], lrn(y)[:, :12])
    assert not torch.equal(lrn(x)[:, 12:], lrn(y)[:, 12:])
    conv2 = convs["conv2"]
    z = torch.rand(1, 24, 9, 9)
    z2 = z.clone()
    z2[:, 12:] += 1
    assert torch.equal(conv2(z)[:, : conv2.out_channels // 2], conv2(z2)[:, : conv2.out_channels // 2])
    conv3 = convs["conv3"]
    w = torch.rand(1, conv3.in_channels, 5, 5)
    w2 = w.clone()
    w2[:, conv3.in_channels // 2 :] += 1
    assert not torch.equal(conv3(w)[:, :1], conv3(w2)[:, :1])


@pytest.mark.parametrize("removed", [[3], [4]])
def test_depth_ablation_removes_a_middle_conv_layer(removed):
    full, cut = AlexNet(), AlexNet(remove=removed)
    names = set(cut.weighted_layers())
    assert f"conv{removed[0]}" not in names and len(names) == 7
    expected = {3: 885_120, 4: 663_936}[removed[0]]  # conv3 (384x256x3x3 + 384), conv4 (384x192x3x3 + 384)
    if removed == [3]:  # conv4 then reads conv2's 256 maps instead of conv3's 384: 384 x 128 x 9 fewer weights
        expected += 384 * 64 * 9
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(full) - n(cut) == expected
    assert cut(torch.randn(1, 3, 224, 224)).shape == (1, 1000)


def test_activation_and_dropout_placement():
    net = AlexNet(activation="tanh", dropout=0.3, width=0.125, fc_units=8, num_classes=3, input_size=64)
    assert isinstance(net.features.act1, nn.Tanh) and isinstance(net.classifier.act7, nn.Tanh)
    names = [n for n, _ in net.classifier.named_children()]
    # dropout on the outputs of fc6 and fc7 = the inputs of fc7 and fc8 (section 4.2)
    assert names == ["flatten", "fc6", "act6", "drop6", "fc7", "act7", "drop7", "fc8"]
    assert net.classifier.drop6.p == 0.3
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in net.modules())


def test_lrn_and_pool_switches():
    off = AlexNet(lrn={"enabled": False}, pool="non_overlap", width=0.125, fc_units=8, input_size=64)
    assert "lrn1" not in off.features._modules and off.features.pool1.kernel_size == 2


def test_one_half_halves_conv1_to_conv4():
    assert kernel_counts("one_half", 1.0) == [48, 128, 192, 192, 256]
    assert kernel_counts("two", 0.0625) == [6, 16, 24, 24, 16]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"towers": "two", "width": 0.3}, "model.towers=two"),
        ({"input_size": 32}, "model.input_size=32"),
        ({"remove": [1]}, "model.remove"),
        ({"towers": "three"}, "model.towers"),
        ({"init": "xavier"}, "model.init"),
    ],
)
def test_bad_arguments_name_the_key(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AlexNet(**kwargs)


BIASES = {
    "paper": {"conv1": 0, "conv2": 1, "conv3": 0, "conv4": 1, "conv5": 1, "fc6": 1, "fc7": 1, "fc8": 0},
    "caffe": {"conv1": 0, "conv2": 0.1, "conv3": 0, "conv4": 0.1, "conv5": 0.1, "fc6": 0.1, "fc7": 0.1, "fc8": 0},
}


@pytest.mark.parametrize("scheme", ["paper", "caffe", "kaiming"])
def test_init_statistics(scheme):
    torch.manual_seed(0)
    layers = AlexNet(init=scheme).weighted_layers()
    for name, layer in layers.items():
        w, b = layer.weight, layer.bias
        if scheme == "paper":
            std = 0.01
        elif scheme == "caffe":
            std = 0.005 if name in ("fc6", "fc7") else 0.01
        else:
            std = 0.01 if name == "fc8" else math.sqrt(2.0 / (w[0].numel()))
        assert abs(w.mean().item()) < 0.1 * std, name
        assert w.std().item() == pytest.approx(std, rel=0.05), name
        expected_bias = BIASES.get(scheme, {}).get(name, 0.0)
        assert torch.all(b == expected_bias), name
