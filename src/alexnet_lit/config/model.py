"""The ``model`` group: the network's arguments (models/alexnet.py, models/cuda_convnet.py) and how it is trained
(module.py, plateau.py). The defaults are the paper's."""

from __future__ import annotations

from dataclasses import dataclass, field

from alexnet_lit.config.choices import (
    Activation,
    Arch,
    Init,
    LRNConvention,
    LRNKernel,
    OptimizerName,
    Pool,
    Scheduler,
    TowerConv,
    Towers,
)
from alexnet_lit.config.fields import ranged


@dataclass
class LRNConfig:
    """Section 3.3: b = a / (k + alpha * sum over n neighbouring kernels of a^2)^beta."""

    enabled: bool = True
    size: int = ranged(5, lo=1)  # n
    alpha: float = ranged(1e-4, lo=0)
    beta: float = ranged(0.75, lo=0)
    k: float = ranged(2.0, lo=0)
    convention: LRNConvention = LRNConvention.paper
    kernel: LRNKernel = LRNKernel.fused  # how it is computed (models/lrn.py): the same numbers within rounding


@dataclass
class NetConfig:
    """AlexNet's arguments (models/alexnet.py); the defaults are the paper's network."""

    arch: Arch = Arch.alexnet  # the CIFAR nets take their layers from cuda-convnet's files (models/cuda_convnet.py)
    num_classes: int = ranged(1000, lo=2)
    input_size: int = ranged(224, lo=1)  # 224 (conv1 padding 2) or 227 (Caffe's crop, no padding): both give 55x55 maps
    towers: Towers = Towers.two
    activation: Activation = Activation.relu
    lrn: LRNConfig = field(default_factory=LRNConfig)
    pool: Pool = Pool.overlap
    dropout: float = ranged(0.5, 0, 1, hi_open=True)  # section 4.2, on the outputs of fc6 and fc7; 0 disables
    init: Init = Init.paper
    # paper and caffe (fixed stds): each layer's std x sqrt(its fan-in in the full-size net / its fan-in here), so a
    # narrower or smaller net keeps the full-size net's per-layer gain (+proxy=cifar10). kaiming and lecun scale by
    # the fan-in already: the same weights either way.
    init_full_size_gain: bool = False
    remove: list[int] = field(default_factory=list)  # section 7: [3] or [4] removes that middle conv layer
    width: float = ranged(1.0, lo=0, lo_open=True)  # scales every conv layer's kernel count (small runs, same code)
    fc_units: int = ranged(4096, lo=1)  # hidden units of fc6 and fc7
    conv1_padding: int | None = None  # None: 2 for 224 inputs, 0 for 227
    in_channels: int = ranged(3, lo=1)
    tower_conv: TowerConv = TowerConv.grouped  # how the towers' convs compute; the same weights and numbers


@dataclass
class OptimizerConfig:
    """Section 5: SGD, momentum 0.9, weight decay 5e-4, lr 0.01."""

    name: OptimizerName = OptimizerName.sgd
    lr: float = ranged(0.01, lo=0)
    momentum: float = ranged(0.9, 0, 1, hi_open=True)
    weight_decay: float | None = ranged(5e-4, lo=0)  # null: each layer's own (the CIFAR nets' layer-params files)
    bias_lr_mult: float = ranged(1.0, lo=0)  # Caffe uses 2
    bias_weight_decay: bool = True  # Caffe uses false


@dataclass
class SchedulerConfig:
    """Section 5: divide the lr by 10 when the validation error stops improving, three times, then stop."""

    name: Scheduler = Scheduler.plateau
    milestones: list[int] = field(default_factory=list)  # name=step: the epochs after which lr x factor
    factor: float = ranged(0.1, 0, 1, lo_open=True, hi_open=True)
    patience: int = ranged(3, lo=0)  # epochs without improvement; the paper decided by eye
    threshold: float = ranged(1e-4, lo=0)
    max_lr_reductions: int | None = ranged(3, lo=0)  # None: only trainer.max_epochs ends the run


@dataclass
class ModelConfig(NetConfig):
    """The ``model`` group: the network's arguments plus how it is trained (module.py)."""

    channels_last: bool = False  # NHWC memory; pays with bf16 autocast on some CPUs and on GPUs
    compile: bool = False  # torch.compile the network in place (nn.Module.compile: the state dict keeps its keys)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
