"""The ``data`` group (data/datamodule.py) and the store's side, with the data group's own combinations
(``check_data``: the data module and ``validate`` both call it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING, DictConfig

from alexnet_lit.config.choices import AugmentOn, LightingMagnitude, Normalize, Source
from alexnet_lit.config.fields import ConfigError, ranged

SIDE = 256  # section 2: "down-sampled the images to a fixed resolution of 256 x 256" (the store, the resize)


@dataclass
class LightingConfig:
    """Section 4.1: PCA lighting, alpha_i ~ N(0, std) per image, defined on [0, 1] pixels (data/lighting.py)."""

    enabled: bool = False
    std: float = ranged(0.1, lo=0)
    magnitude: LightingMagnitude = LightingMagnitude.eigenvalue


@dataclass
class GeneratedConfig:
    """The embedded shapes set (data/generated.py)."""

    classes: int = ranged(10, 2, 10)  # data/generated.py draws 10 shapes
    train_per_class: int = ranged(300, lo=1)
    val_per_class: int = ranged(60, lo=1)
    image_size: int = ranged(72, lo=16)
    seed: int = ranged(0, lo=0)


@dataclass
class DataConfig:
    source: Source = MISSING
    num_classes: int = ranged(MISSING, lo=2)
    root: str | None = None
    download: bool = False
    custom_classes: bool = False
    skip_bad: bool = False  # leave undecodable files (data=imagenet) or store samples out of their batch, named
    resize_size: int = ranged(SIDE, lo=1)  # section 2
    crop_size: int = ranged(224, lo=1)  # section 4.1 (227 as Caffe crops)
    flip: bool = True
    augment_on: AugmentOn = AugmentOn.workers  # where training crops, flips, JPEG decodes are done (prepared store)
    ten_crop: bool = True  # section 4.1: also test on the 10-crop view
    # The value of a white pixel before mean subtraction: 255 is the paper's (cuda-convnet's and Caffe's) raw
    # 8-bit scale, for which its LRN constants and init were chosen; 1 is torchvision's [0, 1] convention.
    # The network sees pixel_max x (the input normalized on [0, 1] pixels), whatever data.normalize is.
    pixel_max: float = ranged(255.0, lo=0, lo_open=True)
    normalize: Normalize = Normalize.channel
    stats_path: str | None = None  # stats.npz from alexnet-prepare: mean image and RGB eigenvectors
    lighting: LightingConfig = field(default_factory=LightingConfig)
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])  # normalize=channel, [0, 1] pixels
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    batch_size: int = ranged(128, lo=1)  # section 5
    num_workers: int | None = ranged(None, lo=0)  # None: one per core, at most 8
    pin_memory: bool | None = None  # None: when CUDA is there
    persistent_workers: bool = True
    prefetch_factor: int | None = ranged(2, lo=1)
    timeout: float = ranged(600.0, lo=0)  # seconds a batch may take before the run fails (0: wait forever)
    generated: GeneratedConfig = field(default_factory=GeneratedConfig)
    cache_dir: str = "${oc.env:ALEXNET_LIT_CACHE,${oc.env:HOME,.}/.cache/alexnet-lit}"  # generated data



def check_data(d: DataConfig | DictConfig, stats_given: bool = False) -> None:
    """The data group's own combinations: ``validate`` and ``AlexNetDataModule`` both call this one place."""
    if d.crop_size > d.resize_size:
        raise ConfigError(
            f"data.crop_size={d.crop_size} is larger than data.resize_size={d.resize_size}: crops are taken from the "
            f"resized square image, so data.crop_size must be <= data.resize_size"
        )
    if d.source == Source.generated and d.generated.classes * d.generated.train_per_class < d.batch_size:
        raise ConfigError(
            f"data.batch_size={d.batch_size} is more than the {d.generated.classes * d.generated.train_per_class} "
            f"generated training images (data.generated.classes x train_per_class): no full batch, no training step; "
            f"lower data.batch_size or raise data.generated.train_per_class"
        )
    if d.source == Source.generated and d.generated.classes != d.num_classes:
        raise ConfigError(
            f"data.generated.classes={d.generated.classes} differs from data.num_classes={d.num_classes}; "
            f"set both (data.num_classes is what the model's output layer uses)"
        )
    if d.augment_on == AugmentOn.device and d.source != Source.prepared:
        raise ConfigError(f"data.augment_on=device cuts the crops from the prepared store's whole rows on the "
                          f"device: it needs data=imagenet_prepared, not data.source={Source(d.source).value} "
                          f"(use data.augment_on=workers)")
    if d.source != Source.generated and not d.root:
        raise ConfigError(f"data.root is not set: data.source={Source(d.source).value} reads images from data.root")
    if (d.normalize == Normalize.mean_image or d.lighting.enabled) and not (d.stats_path or stats_given):
        raise ConfigError(
            f"data.normalize={Normalize(d.normalize).value} / data.lighting.enabled={d.lighting.enabled} need "
            f"training-set statistics: set data.stats_path to the stats.npz written by alexnet-prepare, or use "
            f"data.normalize=channel and data.lighting.enabled=false"
        )
    if d.ten_crop and d.crop_size == d.resize_size:
        raise ConfigError(f"data.ten_crop=true with data.crop_size = data.resize_size = {d.crop_size}: the ten views "
                          f"of a whole image are two (the image and its mirror, five times each); set "
                          f"data.ten_crop=false, or a crop smaller than the image (24 for CIFAR-10's 32 px)")
