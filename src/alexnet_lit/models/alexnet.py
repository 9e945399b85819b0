"""AlexNet as in Krizhevsky, Sutskever & Hinton (NeurIPS 2012), section 3, with every ablation as an argument.

    alexnet-describe                          # layer table of the composed config, ends "total params: 60,965,224"
    alexnet-describe model.towers=one_half    # the paper's one-GPU comparison net: 59,798,312

Layers (section 3.5, Figure 2): conv1 96 11x11/4 -> LRN -> max-pool; conv2 256 5x5 -> LRN -> max-pool;
conv3 384 3x3; conv4 384 3x3; conv5 256 3x3 -> max-pool; fc6 4096; fc7 4096; fc8 num_classes.
The arguments, their defaults (the paper's) and their allowed values are ``NetConfig`` in config/model.py:
``AlexNet(width=0.25)`` and ``AlexNet(NetConfig(width=0.25))`` are the same network.

Towers (section 3.2): with ``towers="two"`` the net is the paper's two-GPU net on one device: conv2, conv4 and
conv5 are grouped convolutions (each tower sees only its own half of the previous layer), conv3 and the FC
layers see both towers, and LRN normalizes within a tower. ``one_half`` is the footnote's one-GPU net (half the
kernels in conv1..conv4, full conv5 and FC); ``one`` is a single full-width tower. The same net on two devices,
one tower each (``trainer=towers``), is models/towers.py; it shares these modules and their parameter names.

Where we depart from the paper, or where it is ambiguous:
- Input size: the paper says 224x224 inputs but its map sizes (55, 27, 13, 6) need 227 (as Caffe crops) or
  padding. ``conv1_padding=None`` picks 0 for sizes where (size - 11) is divisible by 4 (227) and 2 otherwise
  (224, as torchvision does); both give 55x55 conv1 maps.
- Dropout: "dropout in the first two fully-connected layers" is read as cuda-convnet and Caffe do: on the
  outputs of fc6 and fc7, i.e. the inputs of fc7 and fc8 (torchvision instead drops the inputs of fc6 and fc7).
- Padding of conv2..conv5 (2, 1, 1, 1) is not printed in the paper; it is the only choice that keeps 27 and 13.
- ``width`` scales every conv layer's kernel count and ``fc_units`` sets the hidden FC size, so tests and small
  data use this same code path with smaller numbers.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from alexnet_lit.config import Activation, ConfigError, Init, NetConfig, Pool, TowerConv, Towers, build
from alexnet_lit.models import towers as tower_split
from alexnet_lit.models.init import describe_init, fan_in, init_weights
from alexnet_lit.models.locally_connected import LocallyConnected2d
from alexnet_lit.models.lrn import LocalResponseNorm
from alexnet_lit.models.scaled_tanh import ScaledTanh

PAPER_KERNELS = (96, 256, 384, 384, 256)  # conv1..conv5, section 3.5
POOL_WINDOW = {Pool.overlap: (3, 2), Pool.non_overlap: (2, 2)}  # (z, s), section 3.4
ACTIVATION = {Activation.relu: nn.ReLU, Activation.tanh: nn.Tanh, Activation.lecun_tanh: ScaledTanh}
REMOVABLE = (3, 4)  # section 7: removing any middle conv layer costs about 2% top-1

# Which part of the previous layer each layer sees with towers="two" (Figure 2).
_TOWER_VIEW = {"conv1": "split", "conv2": "own", "conv3": "both", "conv4": "own", "conv5": "own"}


class TowerConv2d(nn.Conv2d):
    """A grouped convolution computed as one convolution per tower (``model.tower_conv=split``): the same weight
    tensor and state dict as ``nn.Conv2d(groups=2)``, each tower's kernels applied to its own half of the input.
    Grouped convolutions are slower than split ones on some back-ends; on oneDNN CPUs they are not (bench-train)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs, ws = x.chunk(self.groups, 1), self.weight.chunk(self.groups, 0)
        bs = self.bias.chunk(self.groups, 0) if self.bias is not None else [None] * self.groups
        return torch.cat([F.conv2d(a, w, b, self.stride, self.padding) for a, w, b in zip(xs, ws, bs)], 1)


def conv1_padding_for(input_size: int) -> int:
    return 0 if (input_size - 11) % 4 == 0 else 2


def kernel_counts(towers: Towers | str, width: float) -> list[int]:
    """Kernels in conv1..conv5; the one-GPU net halves conv1..conv4 (paper footnote to section 3.2)."""
    counts = [max(1, round(c * width)) for c in PAPER_KERNELS]
    if towers == Towers.one_half:
        counts = [max(1, c // 2) for c in counts[:4]] + counts[4:]
    return counts


def feature_map_sizes(input_size: int, pool: Pool | str = Pool.overlap, conv1_padding: int | None = None) -> dict:
    """Spatial size after conv1, pool1, pool2 (== conv3..conv5) and pool5."""
    z, s = POOL_WINDOW[Pool(pool)]
    pad = conv1_padding_for(input_size) if conv1_padding is None else conv1_padding
    conv1 = (input_size + 2 * pad - 11) // 4 + 1
    pool1 = (conv1 - z) // s + 1
    pool2 = (pool1 - z) // s + 1  # conv2 keeps the size (5x5, padding 2)
    pool5 = (pool2 - z) // s + 1  # conv3..conv5 keep it (3x3, padding 1)
    return {"conv1": conv1, "pool1": pool1, "pool2": pool2, "pool5": pool5}


def full_size_fan_in(cfg: NetConfig) -> dict[str, int]:
    """Each weighted layer's fan-in in the paper's full-size net with the same towers, pooling and removed
    layers (224 px crops, width 1, 4096 FC units), for ``init_full_size_gain``."""
    full = dataclasses.replace(cfg, width=1.0, fc_units=4096, input_size=224, conv1_padding=None, init=Init.paper,
                               init_full_size_gain=False)
    with torch.device("meta"):
        return {name: fan_in(m) for name, m in AlexNet(full).weighted_layers().items()}


def check(cfg: NetConfig) -> None:
    """The network's geometry, the one place it is checked (entry points call it before any data is read;
    ``AlexNet`` calls it too). Each key's own range is its schema's (``ranged`` in config/fields.py, checked by
    ``build``). Raises ConfigError naming the key."""
    if Init(cfg.init) == Init.cuda_convnet:
        raise ConfigError("model.init=cuda_convnet is the CIFAR nets' layer-file init (model.arch=cifar_*); AlexNet "
                          "takes paper, caffe, kaiming or lecun")
    if getattr(getattr(cfg, "optimizer", None), "weight_decay", 0.0) is None:  # a ModelConfig: how it trains
        raise ConfigError("model.optimizer.weight_decay=null takes each layer's weight decay from a CIFAR net's "
                          "layer-params file; AlexNet has one (section 5: 0.0005)")
    counts = kernel_counts(cfg.towers, cfg.width)
    if cfg.towers == Towers.two and any(c % 2 for c in counts):
        raise ConfigError(
            f"model.towers=two splits every conv layer across two towers, but model.width={cfg.width} gives kernel "
            f"counts {counts} (conv1..conv5) with an odd one; pick a model.width that keeps them even "
            f"(e.g. 0.5, 0.25, 0.125) or set model.towers=one"
        )
    if bad := sorted(set(cfg.remove) - set(REMOVABLE)):
        raise ConfigError(f"model.remove={list(cfg.remove)}: only the middle conv layers 3 and 4 can be removed, "
                          f"not {bad}")
    sizes = feature_map_sizes(cfg.input_size, cfg.pool, cfg.conv1_padding)
    if sizes["pool5"] < 1:
        raise ConfigError(
            f"model.input_size={cfg.input_size} (data.crop_size) is too small for the paper's strides: pool5 maps "
            f"would be {sizes['pool5']}x{sizes['pool5']}; use a crop of at least 63 px (raise data.resize_size and "
            f"data.crop_size; small images are upscaled)"
        )


class AlexNet(nn.Module):
    def __init__(self, cfg: NetConfig | None = None, **kwargs: Any) -> None:
        """``cfg``, or NetConfig's keys as keyword arguments (checked against the schema)."""
        super().__init__()
        cfg = build(NetConfig, kwargs if cfg is None else cfg, "model")
        check(cfg)
        self.cfg = cfg
        self.towers, self.input_size, self.num_classes = Towers(cfg.towers), cfg.input_size, cfg.num_classes
        self.map_sizes = feature_map_sizes(cfg.input_size, cfg.pool, cfg.conv1_padding)
        groups = 2 if self.towers == Towers.two else 1
        counts = kernel_counts(cfg.towers, cfg.width)
        z, s = POOL_WINDOW[Pool(cfg.pool)]
        act = ACTIVATION[Activation(cfg.activation)]
        pad1 = conv1_padding_for(cfg.input_size) if cfg.conv1_padding is None else cfg.conv1_padding

        layers: OrderedDict[str, nn.Module] = OrderedDict()
        spec = [  # name, kernels, kernel size, stride, padding, groups
            ("conv1", counts[0], 11, 4, pad1, 1),
            ("conv2", counts[1], 5, 1, 2, groups),
            ("conv3", counts[2], 3, 1, 1, 1),
            ("conv4", counts[3], 3, 1, 1, groups),
            ("conv5", counts[4], 3, 1, 1, groups),
        ]
        channels = cfg.in_channels
        for i, (name, out, ksize, stride, pad, g) in enumerate(spec, start=1):
            if i in cfg.remove:
                continue
            conv = TowerConv2d if g > 1 and cfg.tower_conv == TowerConv.split else nn.Conv2d
            layers[name] = conv(channels, out, ksize, stride, pad, groups=g)
            layers[f"act{i}"] = act()
            if i in (1, 2) and cfg.lrn.enabled:  # section 3.3: after the first and second conv layers' activation
                layers[f"lrn{i}"] = LocalResponseNorm(cfg.lrn, groups)
            if i in (1, 2, 5):
                layers[f"pool{i}"] = nn.MaxPool2d(z, s)
            channels = out
        self.features = nn.Sequential(layers)

        flat = channels * self.map_sizes["pool5"] ** 2
        self.classifier = nn.Sequential(
            OrderedDict(
                [
                    ("flatten", nn.Flatten()),
                    ("fc6", nn.Linear(flat, cfg.fc_units)),
                    ("act6", act()),
                    ("drop6", nn.Dropout(cfg.dropout)),
                    ("fc7", nn.Linear(cfg.fc_units, cfg.fc_units)),
                    ("act7", act()),
                    ("drop7", nn.Dropout(cfg.dropout)),
                    ("fc8", nn.Linear(cfg.fc_units, cfg.num_classes)),
                ]
            )
        )
        full = full_size_fan_in(cfg) if cfg.init_full_size_gain and cfg.init in (Init.paper, Init.caffe) else None
        init_weights(self.weighted_layers(), cfg.init, full)
        self.tower_group: tower_split.TowerGroup | None = None  # set by towers.split: one tower per device

    def weighted_layers(self) -> dict[str, nn.Module]:
        """conv1..conv5 (those present) and fc6..fc8, by the paper's names."""
        named = list(self.features.named_children()) + list(self.classifier.named_children())
        return {n: m for n, m in named if isinstance(m, (nn.Conv2d, nn.Linear))}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """conv1..pool5 (timm's interface): the maps the classifier flattens (on two devices: this tower's)."""
        if self.tower_group is not None:
            return tower_split.forward_features(self, x)
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """fc6..fc8 on ``forward_features``' output; ``pre_logits=True`` stops at the last 4096-d hidden layer
        (fc7 after its ReLU and dropout), the features of the paper's Figure 4 (section 6.1)."""
        if self.tower_group is not None:
            return tower_split.forward_head(self, x, pre_logits)
        hidden = self.classifier[:-1](x)
        return hidden if pre_logits else self.classifier.fc8(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def tower_view(self, name: str) -> str:
        """How a layer is split across the paper's two towers: split, own (grouped or per-tower) or both."""
        if self.towers != Towers.two:
            return "-"
        return _TOWER_VIEW.get(name, "own" if name in self.features._modules else "both")

    def describe(self) -> list[tuple[str, str, str, tuple[int, ...], int]]:
        return describe_layers(self)

    def init_text(self, name: str) -> str:
        return describe_init(name, self.cfg.init, full_size_gain=self.cfg.init_full_size_gain
                             and Init(self.cfg.init) in (Init.paper, Init.caffe))


@torch.no_grad()
def describe_layers(net: nn.Module) -> list[tuple[str, str, str, tuple[int, ...], int]]:
    """(layer, operation and settings, tower view, output shape without batch, parameters) for every layer of a
    net with ``features`` and ``classifier`` (AlexNet, the CIFAR nets), by a real forward pass."""
    rows = []
    x = torch.zeros(1, net.cfg.in_channels, net.input_size, net.input_size)
    for seq in (net.features, net.classifier):
        for name, module in seq.named_children():
            x = module(x)
            params = sum(p.numel() for p in module.parameters())
            op = settings(module)
            if isinstance(module, (nn.Conv2d, nn.Linear, LocallyConnected2d)):
                op += f"; {net.init_text(name)}"
            rows.append((name, op, net.tower_view(name), tuple(x.shape[1:]), params))
    return rows


def settings(module: nn.Module) -> str:
    """A layer's operation and the settings an ablation changes, as alexnet-describe prints them."""
    if isinstance(module, nn.Conv2d):
        (kh, kw), (s, _), (p, _) = module.kernel_size, module.stride, module.padding
        split = " (as 2 convs)" if isinstance(module, TowerConv2d) else ""
        return f"conv {kh}x{kw}/{s} pad {p}" + (f" groups {module.groups}{split}" if module.groups > 1 else "")
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        kind = "max" if isinstance(module, nn.MaxPool2d) else "avg"
        return f"{kind}-pool {module.kernel_size}x{module.kernel_size}/{module.stride}" + \
            (" ceil" if module.ceil_mode else "")
    if isinstance(module, LocallyConnected2d):
        k = module.kernel_size
        return f"locally connected {k}x{k}/{module.stride} pad {module.padding} (unshared)"
    if isinstance(module, ScaledTanh):
        return f"{module.a:g} tanh({module.b:.4g} x)"
    if isinstance(module, nn.Dropout):
        return f"dropout p={module.p:g}"
    if isinstance(module, nn.Linear):
        return f"fc {module.in_features} -> {module.out_features}"
    if isinstance(module, LocalResponseNorm):
        return module.settings() + (" per tower" if module.groups > 1 else "")
    return type(module).__name__  # ReLU, Tanh, Flatten
