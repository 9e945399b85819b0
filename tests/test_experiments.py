"""Every experiment's diff reaches what is built: the composed recipe, turned into the real network and data module,
differs from the paper's exactly where the experiment says (not merely "it runs")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from torch import nn

from alexnet_lit.config import plain
from alexnet_lit.data import AlexNetDataModule
from alexnet_lit.models.lrn import LocalResponseNorm
from alexnet_lit.module import AlexNetModule
from conftest import compose_train

EXPERIMENTS = sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "experiment").glob("*.yaml"))
STATS = {"mean_image": np.full((256, 256, 3), 120.0), "eigval": np.ones(3), "eigvec": np.eye(3)}


CIFAR_NETS = {"figure1", "lrn_cifar10"}


def built(experiment: str, tmp_path: Path) -> tuple[nn.Module, AlexNetDataModule]:
    """The network and data module the composed experiment builds (statistics stand in for a store's)."""
    # an eighth of the width (the same code path): the diffs are in the layers' kinds and settings, not their size
    # (cuda-convnet's nets are small already and refuse AlexNet's width switches)
    narrow = [] if experiment in CIFAR_NETS else ["model.width=0.125", "model.fc_units=64"]
    cfg = compose_train([f"+experiment={experiment}", "data.root=store", *narrow], tmp_path, tmp_path)
    container = plain(cfg)
    return AlexNetModule(**container["model"]).net, AlexNetDataModule(stats=STATS, **container["data"])


def activations(net) -> set[type]:
    return {type(m) for m in net.modules() if isinstance(m, (nn.ReLU, nn.Tanh))}


# experiment -> what must hold for its build and fail for the paper's; "paper" describes the paper's recipe itself
DIFFS = {
    "paper": lambda net, dm: (activations(net) == {nn.ReLU} and dm.normalizer.pixel_max == 255
                              and dm.normalizer.normalize.value == "mean_image" and dm.normalizer.lighting.enabled
                              and net.features.conv2.groups == 2 and net.num_classes == 1000),
    "tanh": lambda net, dm: (activations(net) == {nn.Tanh}  # lecun: zero biases, N(0, 1/fan-in) below the output
                             and all(float(m.bias.abs().max()) == 0 for m in net.weighted_layers().values())
                             and abs(float(net.weighted_layers()["conv2"].weight.std())
                                     * net.weighted_layers()["conv2"].weight[0].numel() ** 0.5 - 1) < 0.05),
    "no_lrn": lambda net, dm: not any(isinstance(m, LocalResponseNorm) for m in net.modules()),
    "non_overlap_pool": lambda net, dm: all(net.features._modules[p].kernel_size == 2 for p in ("pool1", "pool2",
                                                                                               "pool5")),
    "one_gpu": lambda net, dm: net.features.conv1.out_channels == 6 and net.features.conv2.groups == 1,
    "no_dropout": lambda net, dm: net.classifier.drop6.p == 0 and net.classifier.drop7.p == 0,
    "no_conv3": lambda net, dm: "conv3" not in net.features._modules and "conv4" in net.features._modules,
    "no_conv4": lambda net, dm: "conv4" not in net.features._modules and "conv3" in net.features._modules,
    "no_pca": lambda net, dm: not dm.normalizer.lighting.enabled,
    "caffe_init": lambda net, dm: bool((net.classifier.fc6.bias == 0.1).all()),
    "quickstart": lambda net, dm: (dm.source.value == "generated" and dm.normalizer.pixel_max == 1
                                   and net.cfg.init.value == "kaiming" and bool((net.classifier.fc6.bias == 0).all())),
    "figure1": lambda net, dm: (net.cfg.arch.value == "cifar_80sec" and activations(net) == {nn.ReLU}
                                and net.cfg.optimizer.weight_decay == 0 and net.cfg.scheduler.name.value == "constant"
                                and dm.crop_size == dm.resize_size == 32 and not dm.flip and not dm.ten_crop
                                and dm.normalizer.pixel_max == 255 and dm.normalizer.normalize.value == "mean_image"),
    "lrn_cifar10": lambda net, dm: (net.cfg.arch.value == "cifar_11pct"
                                    and sum(isinstance(m, LocalResponseNorm) for m in net.modules()) == 2
                                    and net.cfg.scheduler.name.value == "step"
                                    and list(net.cfg.scheduler.milestones) == [500, 510]
                                    and dm.crop_size == 24 and dm.resize_size == 32 and dm.flip and dm.ten_crop),
}
SAME_NETWORK_AS_PAPER = {"two_gpu", "no_pca"}  # two_gpu names the paper's net for sweeps; no_pca changes data only


def test_every_experiment_has_an_expected_diff():
    assert set(EXPERIMENTS) == set(DIFFS) | {"two_gpu"}, "add the new experiment's diff to DIFFS"


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    return built("paper", tmp_path_factory.mktemp("paper"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_diff_reaches_the_built_model_and_data(experiment, paper, tmp_path):
    net, dm = built(experiment, tmp_path)
    if experiment in SAME_NETWORK_AS_PAPER:
        assert str(net) == str(paper[0])
    if experiment == "two_gpu":
        return
    assert DIFFS[experiment](net, dm), f"{experiment}: its diff does not reach the built network or data"
    if experiment != "paper":
        assert not DIFFS[experiment](*paper), f"{experiment}: the paper's build already satisfies the check"


@pytest.mark.parametrize("experiment, init", [("tanh", "lecun"), ("paper", "paper"), ("caffe_init", "caffe")])
def test_the_cifar10_proxy_keeps_the_experiments_init_and_the_full_size_gain(experiment, init, tmp_path):
    """+proxy=cifar10 comes after +experiment: it must not replace tanh's lecun with the paper's init."""
    cfg = compose_train([f"+experiment={experiment}", "+proxy=cifar10"], tmp_path, tmp_path)
    assert cfg.model.init.value == init and cfg.model.init_full_size_gain
