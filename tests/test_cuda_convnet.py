"""cuda-convnet's CIFAR-10 nets (models/cuda_convnet.py) against their layer files, counted here independently:
parameters from the files' numbers, map sizes from cuda-convnet's own formulas, its average pool's divisor, the
locally connected layer against a loop over positions, and the per-layer recipe reaching the optimizer."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from alexnet_lit import models
from alexnet_lit.config import ModelConfig, build
from alexnet_lit.models.locally_connected import LocallyConnected2d
from alexnet_lit.module import AlexNetModule


def conv(cin, cout, k):
    return cin * k * k * cout + cout


def local(cin, cout, k, side):  # unshared filters and biases at every one of side x side positions
    return side * side * (cin * k * k * cout + cout)


def ceil_pool(side):  # cuda-convnet layer.py: outputsX = ceil((imgSize - sizeX) / stride) + 1
    return math.ceil((side - 3) / 2) + 1


# (arch, input side, parameters as the layer files give them, the side after the last pool)
NETS = [
    ("cifar_80sec", 32, conv(3, 32, 5) + conv(32, 32, 5) + conv(32, 64, 5) + 64 * 4 * 4 * 64 + 64 + 64 * 10 + 10, 4),
    ("cifar_19pct", 32, conv(3, 32, 5) + conv(32, 32, 5) + conv(32, 64, 5) + 64 * 4 * 4 * 10 + 10, 4),
    ("cifar_11pct", 24, conv(3, 64, 5) + conv(64, 64, 5) + local(64, 64, 3, 6) + local(64, 32, 3, 6)
     + 32 * 6 * 6 * 10 + 10, 6),
    ("cifar_13pct", 24, conv(3, 64, 5) + conv(64, 64, 5) + local(64, 32, 3, 6) + local(32, 32, 3, 6)
     + 32 * 6 * 6 * 10 + 10, 6),
]


def net_config(arch: str, side: int, **extra) -> ModelConfig:
    keys = {"arch": arch, "towers": "one", "dropout": 0.0, "init": "cuda_convnet", "num_classes": 10,
            "input_size": side, "lrn": {"enabled": arch == "cifar_11pct", "size": 9, "alpha": 0.001, "k": 1.0,
                                        "convention": "cuda_convnet"}, "optimizer": {"weight_decay": None}}
    return build(ModelConfig, {**keys, **extra}, "model")


@pytest.mark.parametrize("arch, side, params, last", NETS, ids=[n[0] for n in NETS])
def test_each_net_has_its_layer_files_parameters_and_maps(arch, side, params, last):
    net = models.build(net_config(arch, side))
    assert sum(p.numel() for p in net.parameters()) == params
    assert ceil_pool(ceil_pool(side)) == last or ceil_pool(ceil_pool(ceil_pool(side))) == last
    pools = [n for n in net.map_sizes if n.startswith("pool")]
    assert net.map_sizes[pools[-1]] == last
    assert net(torch.zeros(2, 3, side, side)).shape == (2, 10)
    assert all(float(m.bias.detach().abs().max()) == 0 for m in net.weighted_layers().values())  # zero biases


def test_80sec_is_145578_and_its_init_is_the_layer_files():
    net = models.build(net_config("cifar_80sec", 32))
    assert sum(p.numel() for p in net.parameters()) == 145_578  # the count, from layers-80sec.cfg
    stds = {n: float(m.weight.std()) for n, m in net.weighted_layers().items()}
    for name, want in {"conv1": 1e-4, "conv2": 0.01, "conv3": 0.01, "fc64": 0.1}.items():
        assert stds[name] == pytest.approx(want, rel=0.1), name
    kinds = [type(m).__name__ for m in net.features]
    assert kinds == ["Conv2d", "MaxPool2d", "ReLU", "Conv2d", "ReLU", "AvgPool2d", "Conv2d", "ReLU", "AvgPool2d"]


def test_the_average_pool_divides_by_the_window_inside_the_map():
    """conv_util.cu's AvgPooler: sum / regionSize, the window clipped at the map's edge (ceil mode's last one)."""
    net = models.build(net_config("cifar_80sec", 32))
    x = torch.arange(64.0).view(1, 1, 8, 8)
    y = net.features.pool2(x)
    assert y.shape[-1] == ceil_pool(8) == 4
    assert float(y[0, 0, -1, -1]) == pytest.approx(float(x[0, 0, 6:, 6:].mean()))  # a 2x2 window, not 3x3


@pytest.mark.parametrize("padding, stride, channels_last", [(1, 1, False), (1, 1, True), (0, 2, False), (2, 2, True)])
def test_the_locally_connected_layer_is_one_filter_set_per_position(padding, stride, channels_last):
    torch.manual_seed(0)
    layer = LocallyConnected2d(3, 4, 3, input_size=7, padding=padding, stride=stride)
    nn.init.normal_(layer.bias)
    x = torch.randn(2, 3, 7, 7, requires_grad=True)
    padded = nn.functional.pad(x, (padding,) * 4)
    n = layer.out_size
    want = torch.empty(2, 4, n, n)
    for i in range(n):
        for j in range(n):
            patch = padded[:, :, i * stride:i * stride + 3, j * stride:j * stride + 3].reshape(2, -1)
            want[:, :, i, j] = patch @ layer.weight[i * n + j].T + layer.bias[:, i, j]
    got = layer(x.contiguous(memory_format=torch.channels_last) if channels_last else x)
    assert torch.allclose(got, want, atol=1e-5)
    g = torch.randn_like(want)
    grads = torch.autograd.grad(got, [x, layer.weight], g)
    for a, b in zip(grads, torch.autograd.grad(want, [x, layer.weight], g)):
        assert torch.allclose(a, b, atol=1e-4)


def test_the_11pct_control_removes_only_the_two_rnorm_layers():
    on = models.build(net_config("cifar_11pct", 24))
    off = models.build(net_config("cifar_11pct", 24, lrn={"enabled": False}))
    assert [n for n in on.features._modules if n not in off.features._modules] == ["rnorm1", "rnorm2"]
    lrn = on.features.rnorm1
    x = torch.rand(1, 64, 3, 3) * 10
    squares = nn.functional.pad(x.pow(2), (0, 0, 0, 0, 4, 4))
    window = torch.stack([squares[:, c:c + 9].sum(1) for c in range(64)], 1)
    assert torch.allclose(lrn(x), x / (1 + 0.001 / 9 * window) ** 0.75, atol=1e-5)  # cmrnorm: 1 + scale/size x sum


def test_per_layer_weight_decay_and_double_bias_rate_reach_the_step():
    """One SGD step with a zero loss: only weight decay moves the weights, each by lr x its layer's wc."""
    module = AlexNetModule(net_config("cifar_80sec", 32, optimizer={"weight_decay": None, "bias_lr_mult": 2.0,
                                                                     "bias_weight_decay": False, "lr": 0.1}))
    opt = module.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    assert [g["lr"] for g in opt.param_groups] == [0.1, pytest.approx(0.2)]
    before = {n: m.weight.detach().clone() for n, m in module.net.weighted_layers().items()}
    (sum(p.sum() for p in module.parameters()) * 0).backward()
    module.on_before_optimizer_step(opt)
    opt.step()
    for name, m in module.net.weighted_layers().items():
        wc = module.net.weight_decay[name]
        assert torch.allclose(m.weight, before[name] * (1 - 0.1 * wc), atol=1e-7), name
    assert module.net.weight_decay == {"conv1": 0.004, "conv2": 0.004, "conv3": 0.004, "fc64": 0.03, "fc10": 0.03}


def test_the_schedules_cuda_convnet_uses():
    constant = AlexNetModule(net_config("cifar_80sec", 32, scheduler={"name": "constant"})).configure_optimizers()
    assert set(constant) == {"optimizer"} and isinstance(constant["optimizer"], torch.optim.SGD)  # Figure 1: one rate
    step = AlexNetModule(net_config("cifar_80sec", 32, scheduler={"name": "step", "milestones": [8]}))
    sched = step.configure_optimizers()["lr_scheduler"]["scheduler"]
    assert isinstance(sched, torch.optim.lr_scheduler.MultiStepLR) and list(sched.milestones) == [8]
    from alexnet_lit.plateau import reductions

    for _ in range(9):
        sched.step()
    assert reductions(sched) == 1 and sched.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)  # 0.01 x 0.1


def test_describe_prints_the_figure1_net(tmp_path, cache_dir):
    from rich.console import Console

    from alexnet_lit.cli.describe import describe
    from conftest import compose_train

    console = Console(width=150, record=True)
    assert describe(compose_train(["+experiment=figure1"], tmp_path, cache_dir), console) == 145_578
    text = console.export_text()
    assert "layers-80sec.cfg" in text and "avg-pool 3x3/2 ceil" in text and "init N(0, 0.0001), bias 0" in text
    assert "init cuda_convnet; sgd lr 0.001 (biases x2), momentum 0.9, weight decay 0; schedule constant" in text


@pytest.mark.parametrize("overrides, line", [
    (["+experiment=tanh", "+proxy=cifar10"], "init lecun; sgd lr 0.01 (biases x1), momentum 0.9, weight decay 0.0005; "
                                             "schedule plateau x0.1, patience 1"),
    (["+experiment=paper", "+proxy=cifar10"], "init paper with the full-size gain; sgd lr 0.01"),
    (["+experiment=lrn_cifar10"], "weight decay each layer's wc; schedule step x0.1 at epochs [500, 510]"),
])
def test_describe_says_how_the_net_is_initialised_and_trained(overrides, line, tmp_path, cache_dir):
    from rich.console import Console

    from alexnet_lit.cli.describe import describe
    from conftest import compose_train

    console = Console(width=150, record=True)
    describe(compose_train(overrides, tmp_path, cache_dir), console)
    assert line in console.export_text()
