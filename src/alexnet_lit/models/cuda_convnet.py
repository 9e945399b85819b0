"""cuda-convnet's CIFAR-10 nets, the networks the paper's CIFAR-10 claims were measured on (footnote 3: "specified
precisely by the code and parameter files" of cuda-convnet), built from its ``example-layers/`` files.

    alexnet-describe +experiment=figure1                 # layers-80sec: ... total params: 145,578
    alexnet-describe model=cifar_11pct data.crop_size=24  # layers-conv-local-11pct: 2,112,970
    python train.py +experiment=figure1                  # Figure 1 (experiments/figure1)
    python train.py +experiment=lrn_cifar10              # section 3.3's 11% with LRN (experiments/lrn_cifar10)

``model.arch`` picks one; the table ``NETS`` holds each as its layer file lists it (filters, filter size,
padding, pool type) and its parameter file (``initW``, ``wc``), so a reader can hold one against the other:

- ``cifar_80sec`` (layers-80sec.cfg, "26% error in 80 seconds"): Figure 1's "four-layer convolutional neural
  network", read as four hidden layers: conv 5x5 32 -> max-pool -> conv 5x5 32 -> avg-pool -> conv 5x5 64 ->
  avg-pool -> fc 64 -> fc 10. 145,578 parameters.
- ``cifar_19pct`` (layers-19pct.cfg): the same read as four weight layers (no fc 64; fc10 init 0.01, wc 3).
- ``cifar_11pct`` (layers-conv-local-11pct.cfg): conv 64 -> max-pool -> LRN -> conv 64 -> LRN -> max-pool ->
  locally connected 64 -> locally connected 32 -> fc 10, on 24x24 crops: section 3.3's "11% with" LRN.
  ``model.lrn.enabled=false`` removes both ``rnorm`` layers and nothing else: the controlled comparison.
- ``cifar_13pct`` (layers-conv-local-13pct.cfg): the released net without LRN (local3 has 32 filters, other
  weight decays): the paper's "13% without", which differs from the 11% net in more than the normalization.

As cuda-convnet computes them: pools 3x3 stride 2 in ceil mode (layer.py: outputsX = ceil((size - 3) / 2) + 1,
so 32 -> 16 -> 8 -> 4 and 24 -> 12 -> 6), an average pool divides by the part of its window inside the map
(conv_util.cu's AvgPooler: regionSize); ``neuron=relu`` where the file puts it (80sec puts conv1's on pool1:
max-pool and a monotonic unit commute); ``cmrnorm`` is 1 + scale/size x the sum of squares over ``size``
neighbouring maps (layer.py divides scale by size), to the power ``pow``: our LRN with ``convention=cuda_convnet``
and k=1 (conf/model/cifar_11pct.yaml); weights N(0, initW), biases 0 (``model.init=cuda_convnet``); ``wc`` per
layer on the weights only (``model.optimizer.weight_decay=null``), epsB = 2 epsW (``bias_lr_mult=2``).
Departure: cuda-convnet's tanh neuron is a tanh(b x) with its own a, b; ours are ``model.activation=tanh``
(a = b = 1) and ``lecun_tanh`` (scaled_tanh.py).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from alexnet_lit.config import Activation, Arch, ConfigError, Init, NetConfig, Towers
from alexnet_lit.models.locally_connected import LocallyConnected2d
from alexnet_lit.models.lrn import LocalResponseNorm

POOL = (3, 2)  # sizeX, stride: every pool of these files


@dataclass(frozen=True)
class Layer:
    """One section of a layer file, with its parameter file's ``initW`` and ``wc``."""

    name: str
    kind: str  # conv, local, max, avg, rnorm, fc
    out: int = 0  # filters or units; the last fc: num_classes
    size: int = 0  # filterSize
    pad: int = 0
    init: float = 0.0  # initW: weights ~ N(0, initW)
    wc: float = 0.0  # weight decay of this layer's weights
    neuron: bool = False  # neuron=relu on this layer's output


def _conv(name, out, init, wc, neuron=True, kind="conv", size=5, pad=2):
    return Layer(name, kind, out, size, pad, init, wc, neuron)


def _local(name, out, wc):
    return Layer(name, "local", out, 3, 1, 0.04, wc, True)


NETS: dict[Arch, dict] = {
    Arch.cifar_80sec: {"files": "layers-80sec.cfg, layer-params-80sec.cfg", "layers": (
        _conv("conv1", 32, 1e-4, 0.004, neuron=False), Layer("pool1", "max", neuron=True),
        _conv("conv2", 32, 0.01, 0.004), Layer("pool2", "avg"),
        _conv("conv3", 64, 0.01, 0.004), Layer("pool3", "avg"),
        Layer("fc64", "fc", 64, init=0.1, wc=0.03, neuron=True), Layer("fc10", "fc", init=0.1, wc=0.03))},
    Arch.cifar_19pct: {"files": "layers-19pct.cfg, layer-params-19pct.cfg", "layers": (
        _conv("conv1", 32, 1e-4, 0.004, neuron=False), Layer("pool1", "max", neuron=True),
        _conv("conv2", 32, 0.01, 0.004), Layer("pool2", "avg"),
        _conv("conv3", 64, 0.01, 0.004), Layer("pool3", "avg"),
        Layer("fc10", "fc", init=0.01, wc=3.0))},
    Arch.cifar_11pct: {"files": "layers-conv-local-11pct.cfg, layer-params-conv-local-11pct.cfg", "layers": (
        _conv("conv1", 64, 1e-4, 0.0), Layer("pool1", "max"), Layer("rnorm1", "rnorm"),
        _conv("conv2", 64, 0.01, 0.0), Layer("rnorm2", "rnorm"), Layer("pool2", "max"),
        _local("local3", 64, 0.004), _local("local4", 32, 0.004), Layer("fc10", "fc", init=0.01, wc=0.01))},
    Arch.cifar_13pct: {"files": "layers-conv-local-13pct.cfg, layer-params-conv-local-13pct.cfg", "layers": (
        _conv("conv1", 64, 1e-4, 0.0), Layer("pool1", "max"),
        _conv("conv2", 64, 0.01, 0.0), Layer("pool2", "max"),
        _local("local3", 32, 0.004), _local("local4", 32, 0.004), Layer("fc10", "fc", init=0.01, wc=0.004))},
}

# AlexNet's switches (models/alexnet.py) and the value a CIFAR net needs them at: anything else is an error
ALEXNET_ONLY = {"towers": Towers.one, "pool": "overlap", "remove": [], "width": 1.0, "fc_units": 4096,
                "conv1_padding": None, "tower_conv": "grouped", "dropout": 0.0, "init_full_size_gain": False}


def pooled(size: int) -> int:
    return math.ceil((size - POOL[0]) / POOL[1]) + 1


def map_sizes(arch: Arch | str, input_size: int) -> dict[str, int]:
    """Each layer's output side for an input of ``input_size`` (convs and local layers here keep the size)."""
    sizes, s = {}, input_size
    for layer in NETS[Arch(arch)]["layers"]:
        if layer.kind in ("max", "avg"):
            if s < POOL[0]:
                return {**sizes, layer.name: 0}
            s = pooled(s)
        sizes[layer.name] = 1 if layer.kind == "fc" else s
    return sizes


def check(cfg: NetConfig) -> None:
    """The switches that a CIFAR net cannot take, each named with what to do. Raises ConfigError."""
    arch = Arch(cfg.arch).value
    for key, needed in ALEXNET_ONLY.items():
        value = getattr(cfg, key)
        value = value.value if hasattr(value, "value") else value
        needed = needed.value if hasattr(needed, "value") else needed
        if value != needed:
            raise ConfigError(f"model.{key}={value} is a switch of AlexNet's; model.arch={arch} takes its layers "
                              f"from cuda-convnet's {NETS[Arch(arch)]['files'].split(',')[0]} (leave model.{key} "
                              f"at {needed}, or use model.arch=alexnet)")
    if Init(cfg.init) in (Init.paper, Init.caffe):
        raise ConfigError(f"model.init={Init(cfg.init).value} is AlexNet's per-layer table; model.arch={arch} takes "
                          f"model.init=cuda_convnet (its layer file's initW), lecun or kaiming")
    has_lrn = any(layer.kind == "rnorm" for layer in NETS[Arch(arch)]["layers"])
    if cfg.lrn.enabled and not has_lrn:
        raise ConfigError(f"model.lrn.enabled=true: model.arch={arch} has no response-normalization layer "
                          f"(cifar_11pct has two); set model.lrn.enabled=false")
    sizes = map_sizes(arch, cfg.input_size)
    if min(sizes.values()) < 1:
        raise ConfigError(f"model.input_size={cfg.input_size} (data.crop_size) is too small for model.arch={arch}: "
                          f"its 3x3 pools need maps of at least 3 px ({sizes}); use 24 or 32 px inputs")


class CudaConvnetNet(nn.Module):
    """One of ``NETS``, with AlexNet's interface (features, classifier, weighted_layers, forward_features/head,
    describe), so the LightningModule, alexnet-describe and the callbacks take either."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        check(cfg)
        self.cfg, self.arch = cfg, Arch(cfg.arch)
        self.towers, self.input_size, self.num_classes = Towers.one, cfg.input_size, cfg.num_classes
        self.map_sizes = map_sizes(self.arch, cfg.input_size)
        self.tower_group = None  # one device always: the towers strategy refuses these nets
        spec = NETS[self.arch]["layers"]
        self.layer_spec = {layer.name: layer for layer in spec}
        features: OrderedDict[str, nn.Module] = OrderedDict()
        classifier: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
        channels, size = cfg.in_channels, cfg.input_size
        for layer in spec:
            if layer.kind == "fc":  # on the flattened maps, then on the previous fc's units
                out = layer.out or cfg.num_classes
                classifier[layer.name] = nn.Linear(channels * size * size, out)
                channels, size = out, 1
            elif layer.kind == "rnorm":
                if not cfg.lrn.enabled:
                    continue
                features[layer.name] = LocalResponseNorm(cfg.lrn)
            elif layer.kind in ("max", "avg"):
                pool = nn.MaxPool2d if layer.kind == "max" else nn.AvgPool2d
                features[layer.name] = pool(*POOL, ceil_mode=True)
                size = pooled(size)
            else:
                if layer.kind == "conv":
                    features[layer.name] = nn.Conv2d(channels, layer.out, layer.size, padding=layer.pad)
                else:
                    features[layer.name] = LocallyConnected2d(channels, layer.out, layer.size, size, layer.pad)
                channels = layer.out
            if layer.neuron:
                (classifier if layer.kind == "fc" else features)[f"{layer.name}_act"] = activation(cfg.activation)
        self.features, self.classifier = nn.Sequential(features), nn.Sequential(classifier)
        self.output_layer = spec[-1].name
        # the parameter file's wc: the module applies it per layer when model.optimizer.weight_decay=null
        self.weight_decay = {layer.name: layer.wc for layer in spec if layer.kind in ("conv", "local", "fc")}
        from alexnet_lit.models.init import init_weights

        init_weights(self.weighted_layers(), cfg.init, output=self.output_layer, stds=self.init_stds())

    def init_stds(self) -> dict[str, float]:
        """initW of each weighted layer, from the layer file."""
        return {n: self.layer_spec[n].init for n in self.weighted_layers()}

    def weighted_layers(self) -> dict[str, nn.Module]:
        named = list(self.features.named_children()) + list(self.classifier.named_children())
        return {n: m for n, m in named if isinstance(m, (nn.Conv2d, nn.Linear, LocallyConnected2d))}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """The fc layers; ``pre_logits=True`` stops before the output layer (80sec: fc64 after its ReLU)."""
        hidden = self.classifier[:-1](x)
        return hidden if pre_logits else self.classifier[-1](hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def tower_view(self, name: str) -> str:
        return "-"

    def describe(self) -> list[tuple[str, str, str, tuple[int, ...], int]]:
        from alexnet_lit.models.alexnet import describe_layers

        return describe_layers(self)

    def init_text(self, name: str) -> str:
        from alexnet_lit.models.init import describe_init

        return describe_init(name, self.cfg.init, output=self.output_layer, stds=self.init_stds())


def activation(name: Activation | str) -> nn.Module:
    """The unit every ``neuron=relu`` of the layer file becomes."""
    from alexnet_lit.models.alexnet import ACTIVATION  # one table of units for both families

    return ACTIVATION[Activation(name)]()

