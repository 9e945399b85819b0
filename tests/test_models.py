"""The network against the paper: parameter counts, map sizes, towers, depth, dropout placement, init."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from alexnet_lit.config import ConfigError
from alexnet_lit.models import AlexNet, feature_map_sizes
from alexnet_lit.models.alexnet import kernel_counts
from alexnet_lit.models.lrn import LocalResponseNorm

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
    shapes = {name: shape for name, _, _, shape, _ in net.describe()}
    assert shapes["conv1"][1:] == (55, 55)
    assert shapes["pool1"][1:] == (27, 27)
    assert shapes["conv3"][1:] == (13, 13)
    assert shapes["pool5"][1:] == (6, 6)
    assert net(torch.randn(2, 3, size, size)).shape == (2, 7)


def test_describe_full_size_shapes():
    shapes = {n: s for n, _, _, s, _ in AlexNet().describe()}
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
    for name in ("conv2", "conv4", "conv5"):  # tower 1's outputs ignore tower 2's inputs, and only those
        conv = convs[name]
        half_in, half_out = conv.in_channels // 2, conv.out_channels // 2
        z = torch.rand(1, conv.in_channels, 9, 9)
        z2 = z.clone()
        z2[:, half_in:] += 1
        assert torch.equal(conv(z)[:, :half_out], conv(z2)[:, :half_out]), name
        assert not torch.equal(conv(z)[:, half_out:], conv(z2)[:, half_out:]), name
    conv3 = convs["conv3"]
    w = torch.rand(1, conv3.in_channels, 5, 5)
    w2 = w.clone()
    w2[:, conv3.in_channels // 2 :] += 1
    assert not torch.equal(conv3(w)[:, :1], conv3(w2)[:, :1])


def test_towers_meet_only_at_conv3_and_the_fc_layers():
    """Through the whole stack: perturb tower 2's conv2 maps; tower 1 of lrn2/pool2 is unchanged (it would not be
    if LRN or conv2 crossed towers), and conv3 mixes the towers."""
    torch.manual_seed(0)
    net = AlexNet(towers="two", width=0.25, fc_units=16, num_classes=5, input_size=64, init="kaiming").eval()
    f = net.features
    a = f.act2(f.conv2(f.pool1(f.lrn1(f.act1(f.conv1(torch.rand(1, 3, 64, 64)))))))
    b = a.clone()
    b[:, a.shape[1] // 2 :] *= 3
    half = a.shape[1] // 2
    assert torch.equal(f.pool2(f.lrn2(a))[:, :half], f.pool2(f.lrn2(b))[:, :half])
    assert not torch.equal(f.conv3(f.pool2(f.lrn2(a)))[:, :1], f.conv3(f.pool2(f.lrn2(b)))[:, :1])


def test_channels_last_gives_the_same_numbers():
    from alexnet_lit.module import AlexNetModule

    torch.manual_seed(0)
    kw = {"width": 0.25, "fc_units": 32, "num_classes": 5, "input_size": 64, "dropout": 0.0, "init": "kaiming"}
    plain_m, nhwc = AlexNetModule(**kw), AlexNetModule(**kw, channels_last=True)
    nhwc.load_state_dict(plain_m.state_dict())
    assert nhwc.net.features.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 64, 64) * 50
    out_a, out_b = plain_m(x), nhwc(x)
    torch.testing.assert_close(out_a, out_b, rtol=1e-4, atol=1e-4)
    out_a.square().sum().backward()
    out_b.square().sum().backward()
    torch.testing.assert_close(plain_m.net.features.conv1.weight.grad, nhwc.net.features.conv1.weight.grad,
                               rtol=1e-3, atol=1e-3)


def test_split_tower_convs_are_the_grouped_net_with_the_same_weights():
    """model.tower_conv=split: the same state dict, logits and every gradient (fp32 tolerance) as grouped convs."""
    kw = {"width": 0.25, "fc_units": 32, "num_classes": 5, "input_size": 64, "dropout": 0.0, "init": "kaiming"}
    torch.manual_seed(0)
    grouped, split = AlexNet(**kw), AlexNet(**kw, tower_conv="split")
    split.load_state_dict(grouped.state_dict())
    assert type(split.features.conv2).__name__ == "TowerConv2d" and split.features.conv2.groups == 2
    assert type(split.features.conv3) is nn.Conv2d  # conv3 sees both towers: one ungrouped conv either way
    x = torch.randn(4, 3, 64, 64)
    out_g, out_s = grouped(x), split(x)
    torch.testing.assert_close(out_g, out_s, rtol=1e-5, atol=1e-6)
    out_g.square().sum().backward()
    out_s.square().sum().backward()
    for (name, a), b in zip(grouped.named_parameters(), split.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_compiled_module_keeps_the_state_dict_keys():
    """model.compile=true compiles in place (nn.Module.compile): no '_orig_mod.' prefix, so checkpoints load
    across the switch both ways."""
    from alexnet_lit.module import AlexNetModule

    kw = {"width": 0.0625, "fc_units": 16, "num_classes": 5, "input_size": 64}
    compiled, eager = AlexNetModule(**kw, compile=True), AlexNetModule(**kw)
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    eager.load_state_dict(compiled.state_dict())
    compiled.load_state_dict(eager.state_dict())


def test_tower_conv_may_change_on_resume_but_the_network_may_not():
    from alexnet_lit.checkpoint import network_differences
    from alexnet_lit.config import ModelConfig, plain

    saved = {"hyper_parameters": plain(ModelConfig())}
    assert network_differences(saved, {**plain(ModelConfig()), "tower_conv": "split"}) == ""
    assert "model.width=1.0 (checkpoint) vs 0.5 (now)" in network_differences(saved, {**plain(ModelConfig()),
                                                                                       "width": 0.5})


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
    assert net.classifier.drop6.p == 0.3 and net.classifier.drop7.p == 0.3


def test_lrn_and_pool_switches():
    on = AlexNet(width=0.125, fc_units=8, input_size=64)
    assert sum(isinstance(m, LocalResponseNorm) for m in on.modules()) == 2
    assert {on.features.pool1.kernel_size, on.features.pool1.stride} == {3, 2}
    off = AlexNet(lrn={"enabled": False}, pool="non_overlap", width=0.125, fc_units=8, input_size=64)
    assert not any(isinstance(m, LocalResponseNorm) for m in off.modules())
    assert off.features.pool1.kernel_size == 2 and off.features.pool5.stride == 2


def test_one_half_halves_conv1_to_conv4():
    assert kernel_counts("one_half", 1.0) == [48, 128, 192, 192, 256]
    assert kernel_counts("two", 0.0625) == [6, 16, 24, 24, 16]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"towers": "two", "width": 0.3}, "model.towers=two"),
        ({"input_size": 32}, "model.input_size=32"),
        ({"remove": [1]}, "model.remove"),
        ({"towers": "three"}, "model.towers: Invalid value 'three'"),
        ({"init": "xavier"}, "model.init: Invalid value 'xavier'"),
        ({"widht": 0.5}, "model.widht: Key 'widht' not in 'NetConfig'"),
        ({"dropout": 1.0}, "model.dropout=1.0"),
        ({"lrn": {"size": 0}}, "model.lrn.size=0: must be >= 1"),
    ],
)
def test_bad_arguments_name_the_key(kwargs, message):
    with pytest.raises(ConfigError, match=message):
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


# the paper's full-size fan-ins (towers two: conv2, conv4, conv5 see half of the previous layer)
FULL_FAN_IN = {"conv1": 363, "conv2": 1200, "conv3": 2304, "conv4": 1728, "conv5": 1728, "fc6": 9216, "fc7": 4096,
               "fc8": 4096}


@pytest.mark.parametrize("init", ["paper", "caffe", "kaiming"])
def test_full_size_gain_is_the_plain_init_at_full_size_and_keeps_its_gain_when_narrower(init):
    small_net = {"width": 0.25, "fc_units": 512, "input_size": 64, "num_classes": 10}
    for size in ({}, small_net):
        torch.manual_seed(0)
        plain_init = AlexNet(init=init, **size).weighted_layers()
        torch.manual_seed(0)
        kept = AlexNet(init=init, init_full_size_gain=True, **size).weighted_layers()
        for name, layer in kept.items():
            fan_in = layer.weight[0].numel()
            gain = 1.0 if init == "kaiming" else math.sqrt(FULL_FAN_IN[name] / fan_in)  # kaiming: per fan-in already
            assert torch.allclose(layer.weight, plain_init[name].weight * gain), (init, name, size)
            assert torch.equal(layer.bias, plain_init[name].bias), name
    if init != "kaiming":  # paper: 0.01 x sqrt(9,216 / 64) = 0.12 for the 64 inputs of fc6; caffe's starts at 0.005
        assert kept["fc6"].weight.std().item() == pytest.approx(0.12 if init == "paper" else 0.06, rel=0.1)


def test_forward_features_and_head_are_the_network():
    torch.manual_seed(0)
    net = AlexNet(width=0.125, fc_units=64, input_size=64, num_classes=10, init="kaiming").eval()
    x = torch.randn(3, 3, 64, 64)
    features = net.forward_features(x)
    assert features.shape == (3, 32, 1, 1)  # conv5: 256 x 0.125 kernels, pool5 1x1 at 64 px
    hidden = net.forward_head(features, pre_logits=True)
    c = net.classifier
    assert torch.equal(hidden, torch.relu(c.fc7(torch.relu(c.fc6(features.flatten(1))))))  # fc7 after its ReLU
    assert hidden.shape == (3, 64) and bool((hidden == 0).any())
    assert torch.equal(net.forward_head(features), net(x))
    assert torch.equal(net.classifier.fc8(hidden), net(x))


def test_a_checkpoint_of_init_paper_scaled_reads_as_the_paper_init_with_the_full_size_gain(tmp_path):
    from alexnet_lit.checkpoint import read

    torch.save({"state_dict": {}, "hyper_parameters": {"init": "paper_scaled", "width": 0.25}}, tmp_path / "old.ckpt")
    hp = read(str(tmp_path / "old.ckpt"))["hyper_parameters"]
    assert hp["init"] == "paper" and hp["init_full_size_gain"] is True and hp["width"] == 0.25
