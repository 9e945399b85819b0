"""Structured-config schemas, registered in Hydra's ConfigStore, and the checks that run before any work.

``conf/train.yaml`` starts its defaults list with ``train_schema``, so every YAML file and every command-line
override is merged into these dataclasses: an unknown key or a wrong type fails at composition, naming the key.
``validate`` then checks combinations of keys that a type alone cannot (e.g. ``model.towers=two`` with a width
that gives an odd kernel count) before any data is read or generated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import II, MISSING, DictConfig, OmegaConf

from alexnet_lit.models.alexnet import feature_map_sizes, kernel_counts


class ConfigError(ValueError):
    """A configuration that composes but cannot run; the message names the keys and the fix."""


class Towers(Enum):
    two = "two"
    one_half = "one_half"
    one = "one"


class Activation(Enum):
    relu = "relu"
    tanh = "tanh"


class Pool(Enum):
    overlap = "overlap"
    non_overlap = "non_overlap"


class Init(Enum):
    paper = "paper"
    caffe = "caffe"
    kaiming = "kaiming"


class LRNConvention(Enum):
    paper = "paper"
    cuda_convnet = "cuda_convnet"
    caffe = "caffe"


class OptimizerName(Enum):
    sgd = "sgd"
    paper = "paper"


class Source(Enum):
    generated = "generated"
    folder = "folder"
    archives = "archives"
    prepared = "prepared"
    cifar10 = "cifar10"


class Normalize(Enum):
    channel = "channel"
    mean_image = "mean_image"


class LightingMagnitude(Enum):
    eigenvalue = "eigenvalue"
    sqrt_eigenvalue = "sqrt_eigenvalue"


@dataclass
class LightingConfig:
    enabled: bool = False
    std: float = 0.1
    magnitude: LightingMagnitude = LightingMagnitude.eigenvalue


@dataclass
class LRNConfig:
    enabled: bool = True
    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 2.0
    convention: LRNConvention = LRNConvention.paper


@dataclass
class OptimizerConfig:
    name: OptimizerName = OptimizerName.sgd
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    bias_lr_mult: float = 1.0
    bias_weight_decay: bool = True


@dataclass
class SchedulerConfig:
    factor: float = 0.1
    patience: int = 3
    threshold: float = 1e-4
    max_lr_reductions: int | None = 3


@dataclass
class ModelConfig:
    num_classes: int = II("data.num_classes")
    input_size: int = II("data.crop_size")
    towers: Towers = Towers.two
    activation: Activation = Activation.relu
    lrn: LRNConfig = field(default_factory=LRNConfig)
    pool: Pool = Pool.overlap
    dropout: float = 0.5
    init: Init = Init.paper
    remove: list[int] = field(default_factory=list)
    width: float = 1.0
    fc_units: int = 4096
    conv1_padding: int | None = None
    in_channels: int = 3
    channels_last: bool = False
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)


@dataclass
class GeneratedConfig:
    classes: int = 10
    train_per_class: int = 300
    val_per_class: int = 60
    image_size: int = 72
    seed: int = 0


@dataclass
class DataConfig:
    source: Source = MISSING
    root: str | None = None
    download: bool = False
    custom_classes: bool = False
    num_classes: int = MISSING
    resize_size: int = 256
    crop_size: int = 224
    flip: bool = True
    ten_crop: bool = True
    normalize: Normalize = Normalize.channel
    stats_path: str | None = None
    lighting: LightingConfig = field(default_factory=LightingConfig)
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    batch_size: int = 128
    num_workers: int | None = None
    pin_memory: bool | None = None
    persistent_workers: bool = True
    prefetch_factor: int | None = 2
    generated: GeneratedConfig = field(default_factory=GeneratedConfig)
    cache_dir: str = II("paths.cache_dir")


@dataclass
class TrainerConfig:
    _target_: str = "lightning.pytorch.Trainer"
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: Any = "auto"
    precision: Any = "32-true"
    max_epochs: int = 90
    max_steps: int = -1
    min_epochs: int | None = None
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    limit_test_batches: Any = None
    val_check_interval: Any = None
    check_val_every_n_epoch: int | None = 1
    num_sanity_val_steps: int | None = None
    log_every_n_steps: int | None = None
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = None
    deterministic: Any = None
    benchmark: bool | None = None
    enable_progress_bar: bool | None = None
    enable_model_summary: bool | None = None
    default_root_dir: str | None = None
    use_distributed_sampler: bool = False  # AlexNetDataModule shards itself (exactly-once evaluation)


@dataclass
class PathsConfig:
    root_dir: str = "."
    data_dir: str = "${paths.root_dir}/data"
    log_dir: str = "${paths.root_dir}/logs"
    cache_dir: str = "${oc.env:ALEXNET_LIT_CACHE,${oc.env:HOME,.}/.cache/alexnet-lit}"
    output_dir: str = "${hydra:runtime.output_dir}"


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: dict[str, Any] = field(default_factory=dict)
    callbacks: dict[str, Any] = field(default_factory=dict)
    paths: PathsConfig = field(default_factory=PathsConfig)
    experiment_name: str = "default"
    project: str = "alexnet-lit"
    tags: list[str] = field(default_factory=list)
    seed: int | None = 0
    ckpt_path: str | None = None
    test: bool = True


@dataclass
class PrepareConfig:
    root: str = MISSING  # raw ImageNet: ROOT/train/<wnid>/*, ROOT/val/<wnid>/* (or the archives, archives=true)
    archives: bool = False
    out_dir: str = MISSING
    splits: list[str] = field(default_factory=lambda: ["train", "val"])
    workers: int | None = None
    chunk_size: int = 256
    skip_bad: bool = False
    custom_classes: bool = False
    save_every: float = 5.0  # seconds between progress saves


def plain(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain Python containers (enums as strings): what the library and checkpoints get."""
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True, throw_on_missing=True)


def register() -> None:
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
    ConfigStore.instance().store(name="prepare_schema", node=PrepareConfig)


register()


def validate(cfg: DictConfig) -> None:
    """Checks across keys, before any data is touched. Raises ConfigError naming the keys and the fix."""
    m, d = cfg.model, cfg.data
    towers = m.towers.value if isinstance(m.towers, Enum) else m.towers
    counts = kernel_counts(towers, m.width)
    if towers == "two" and any(c % 2 for c in counts):
        raise ConfigError(
            f"model.towers=two splits every conv layer across two towers, but model.width={m.width} gives kernel "
            f"counts {counts} (conv1..conv5) with an odd one; pick a model.width that keeps them even "
            f"(e.g. 0.5, 0.25, 0.125) or set model.towers=one"
        )
    if set(m.remove) - {3, 4}:
        raise ConfigError(f"model.remove={list(m.remove)}: only the middle conv layers 3 and 4 can be removed")
    pool = m.pool.value if isinstance(m.pool, Enum) else m.pool
    sizes = feature_map_sizes(m.input_size, pool, m.conv1_padding)
    if sizes["pool5"] < 1:
        raise ConfigError(
            f"data.crop_size={d.crop_size} (model.input_size={m.input_size}) is too small for the paper's strides: "
            f"pool5 maps would be {sizes['pool5']}x{sizes['pool5']}; use a crop of at least 63 px "
            f"(raise data.resize_size and data.crop_size; small images are upscaled)"
        )
    if d.crop_size > d.resize_size:
        raise ConfigError(
            f"data.crop_size={d.crop_size} is larger than data.resize_size={d.resize_size}: crops are taken from the "
            f"resized square image, so data.crop_size must be <= data.resize_size"
        )
    if d.num_classes < 2:
        raise ConfigError(f"data.num_classes={d.num_classes}: a classifier needs at least 2 classes")
    if not 0.0 <= m.dropout < 1.0:
        raise ConfigError(f"model.dropout={m.dropout}: must be in [0, 1); 0 disables dropout")
    if m.fc_units < 1 or m.width <= 0:
        raise ConfigError(f"model.fc_units={m.fc_units} and model.width={m.width} must be positive")
    if len(d.mean) != m.in_channels or len(d.std) != m.in_channels:
        raise ConfigError(
            f"data.mean and data.std need one value per input channel (model.in_channels={m.in_channels}), "
            f"got {len(d.mean)} and {len(d.std)}"
        )
    source = d.source.value if isinstance(d.source, Enum) else d.source
    if source == "generated" and d.generated.classes != d.num_classes:
        raise ConfigError(
            f"data.generated.classes={d.generated.classes} differs from data.num_classes={d.num_classes}; "
            f"set both (data.num_classes is what the model's output layer uses)"
        )
    if source in ("folder", "archives", "prepared", "cifar10") and not d.root:
        raise ConfigError(f"data.root is not set: data.source={source} reads images from data.root")
    normalize = d.normalize.value if isinstance(d.normalize, Enum) else d.normalize
    if (normalize == "mean_image" or d.lighting.enabled) and not d.stats_path:
        raise ConfigError(
            f"data.normalize={normalize} / data.lighting.enabled={d.lighting.enabled} need training-set statistics: "
            f"set data.stats_path to the stats.npz written by alexnet-prepare, or use data.normalize=channel and "
            f"data.lighting.enabled=false"
        )
    if normalize == "mean_image" and d.crop_size > 256:
        raise ConfigError(f"data.normalize=mean_image: the mean image is 256x256, data.crop_size={d.crop_size}")
