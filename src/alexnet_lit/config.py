"""Every setting's one home: its type, its allowed values and its default (the paper's, where the paper gives one).

``conf/train.yaml`` starts its defaults list with ``train_schema``, so every YAML file and every command-line
override is merged into these dataclasses: an unknown key, a wrong type or an unknown choice fails at composition,
naming the key. YAML group files hold only what differs from the defaults here; ``python train.py --cfg job``
prints the composed result. Constructors (``AlexNet``, ``AlexNetModule``, ``AlexNetDataModule``) take the same
keys and check them with the same schema (``build``), so a default is never written twice.

Checks, each in one place:
- one key's type or choice: the schema (OmegaConf), at composition; its range (``ranged`` below, next to the
  default): ``build``, which every constructor and ``validate`` run;
- the network's geometry (kernel counts with two towers, the crop against the paper's strides, removable
  layers): ``alexnet_lit.models.alexnet.check``, which ``AlexNet`` runs and every entry point runs before data;
- the data group's combinations (crop against resize, statistics a recipe needs): ``check_data`` below, which
  ``AlexNetDataModule`` runs and ``validate`` (keys across groups, before any data) calls.

The schemas are registered in Hydra's ConfigStore on import of this module and by the Hydra plugin
``hydra_plugins/alexnet_lit`` that Hydra loads itself, so composing works whatever was imported first.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, fields, is_dataclass, make_dataclass
from enum import Enum
from typing import Any, TypeVar

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

SIDE = 256  # section 2: "down-sampled the images to a fixed resolution of 256 x 256" (the store, the resize)


class ConfigError(ValueError):
    """A configuration that composes but cannot run; the message names the keys and the fix."""


def ranged(default: Any, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
           hi_open: bool = False) -> Any:
    """A dataclass field with its default and its allowed range (None = unbounded; open ends exclude the bound).
    ``build`` checks it, so the range lives next to the default and nowhere else."""
    return field(default=default, metadata={"range": (lo, hi, lo_open, hi_open)})


def _range_text(lo, hi, lo_open, hi_open) -> str:
    def num(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else f"{x:g}"

    if hi is None:
        return f"{'>' if lo_open else '>='} {num(lo)}"
    if lo is None:
        return f"{'<' if hi_open else '<='} {num(hi)}"
    return f"in {'(' if lo_open else '['}{num(lo)}, {num(hi)}{')' if hi_open else ']'}"


def check_ranges(obj: Any, key: str) -> None:
    """Every ``ranged`` field of a dataclass instance (recursively) within its range; the error names the key."""
    for f in fields(obj):
        value, name = getattr(obj, f.name), f"{key}.{f.name}" if key else f.name
        if is_dataclass(value):
            check_ranges(value, name)
        else:
            _check_value(f, value, name)


def check_field(schema: type, field_name: str, value: Any, key: str) -> None:
    """One ``ranged`` field of ``schema`` (for a key checked on its own, like the top-level seed)."""
    _check_value(next(f for f in fields(schema) if f.name == field_name), value, key)


def _check_value(f: Any, value: Any, name: str) -> None:
    if "range" in f.metadata and isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi, lo_open, hi_open = f.metadata["range"]
        below = lo is not None and (value <= lo if lo_open else value < lo)
        above = hi is not None and (value >= hi if hi_open else value > hi)
        if below or above or value != value:  # NaN is out of every range
            raise ConfigError(f"{name}={value}: must be {_range_text(lo, hi, lo_open, hi_open)}")


# --- allowed values (str enums: a member equals its name, so plain strings compare and look up alike) -----------
class TowerConv(str, Enum):
    grouped = "grouped"  # conv2, conv4, conv5 as one grouped convolution (faster on oneDNN CPUs: bench-train)
    split = "split"  # as two convolutions, one per tower, on the halves of the same weight (identical numbers)


class Towers(str, Enum):
    two = "two"  # section 3.2: the paper's net, two towers
    one_half = "one_half"  # the footnote's one-GPU net: half the kernels in conv1..conv4
    one = "one"  # one full-width tower


class Arch(str, Enum):
    alexnet = "alexnet"  # section 3, models/alexnet.py
    # cuda-convnet's CIFAR-10 nets (models/cuda_convnet.py), which the paper's CIFAR-10 claims rest on (footnote 3)
    cifar_80sec = "cifar_80sec"  # layers-80sec.cfg: Figure 1's four-layer net
    cifar_19pct = "cifar_19pct"  # layers-19pct.cfg: the same without the 64-unit hidden layer
    cifar_11pct = "cifar_11pct"  # layers-conv-local-11pct.cfg: section 3.3's net with LRN
    cifar_13pct = "cifar_13pct"  # layers-conv-local-13pct.cfg: the released net without LRN


class Activation(str, Enum):
    relu = "relu"  # section 3.1
    tanh = "tanh"  # Figure 1's comparison: tanh(x)
    lecun_tanh = "lecun_tanh"  # 1.7159 tanh(2x/3) (LeCun et al. 1998): the paper gives no constants


class Pool(str, Enum):
    overlap = "overlap"  # section 3.4: z=3, s=2
    non_overlap = "non_overlap"  # z=2, s=2


class Init(str, Enum):
    paper = "paper"  # section 5: N(0, 0.01), biases 1 in conv2, conv4, conv5, fc6, fc7
    caffe = "caffe"  # bvlc_alexnet's train_val.prototxt
    kaiming = "kaiming"  # He-normal, a modern baseline
    lecun = "lecun"  # N(0, 1/fan-in), zero biases: variance-preserving for tanh (LeCun et al. 1998)
    cuda_convnet = "cuda_convnet"  # the CIFAR nets' layer files: N(0, initW) per layer, zero biases


class Scheduler(str, Enum):
    plateau = "plateau"  # section 5: lr / 10 when val/top1_err stops improving
    step = "step"  # lr x factor at each of ``milestones`` (epochs): cuda-convnet's hand-lowered rates
    constant = "constant"  # Figure 1: one rate throughout


class LRNConvention(str, Enum):
    paper = "paper"  # k + alpha * sum a^2, as printed
    cuda_convnet = "cuda_convnet"  # k + alpha/n * sum a^2
    caffe = "caffe"  # 1 + alpha/n * sum a^2


class OptimizerName(str, Enum):
    sgd = "sgd"  # torch.optim.SGD
    paper = "paper"  # the printed update rule (paper_sgd.py)


class Source(str, Enum):
    generated = "generated"
    folder = "folder"
    archives = "archives"
    prepared = "prepared"
    cifar10 = "cifar10"


class AugmentOn(str, Enum):
    workers = "workers"  # the loader's workers cut the random crop and flip (uint8, a row copy)
    device = "device"  # the workers draw them and ship the whole store row; the device cuts the batch at once


class Normalize(str, Enum):
    channel = "channel"  # (x - mean) / std per channel, mean and std on [0, 1] pixels
    mean_image = "mean_image"  # section 2: x - the per-pixel mean image of the training set


class LightingMagnitude(str, Enum):
    eigenvalue = "eigenvalue"  # the printed formula on [0, 1] pixels
    sqrt_eigenvalue = "sqrt_eigenvalue"  # standard deviations instead of variances


# --- model -------------------------------------------------------------------------------------------------
@dataclass
class LRNConfig:
    """Section 3.3: b = a / (k + alpha * sum over n neighbouring kernels of a^2)^beta."""

    enabled: bool = True
    size: int = ranged(5, lo=1)  # n
    alpha: float = ranged(1e-4, lo=0)
    beta: float = ranged(0.75, lo=0)
    k: float = ranged(2.0, lo=0)
    convention: LRNConvention = LRNConvention.paper


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


# --- data --------------------------------------------------------------------------------------------------
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
    skip_bad: bool = False  # data=imagenet: leave undecodable files out of their batch, each named in a warning
    resize_size: int = ranged(SIDE, lo=1)  # section 2
    crop_size: int = ranged(224, lo=1)  # section 4.1 (227 as Caffe crops)
    flip: bool = True
    augment_on: AugmentOn = AugmentOn.workers  # where training crops and flips are cut (data=imagenet_prepared)
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


# --- trainer: every argument of lightning.pytorch.Trainer, typed by its own signature ------------------------
def _trainer_schema() -> type:
    from lightning.pytorch import Trainer

    ours = {"use_distributed_sampler": False}  # AlexNetDataModule shards itself (exactly-once evaluation)
    # ranges Lightning does not check itself (accumulate_grad_batches=0 divides by zero in the first step)
    at_least = {"accumulate_grad_batches": 1, "num_nodes": 1, "check_val_every_n_epoch": 1, "log_every_n_steps": 1,
                "max_epochs": -1, "min_epochs": 0}
    fields: list[tuple[str, Any, Any]] = [("_target_", str, field(default="lightning.pytorch.Trainer"))]
    for name, p in inspect.signature(Trainer.__init__).parameters.items():
        if name in ("self", "logger", "callbacks"):  # loggers and callbacks come from their own groups
            continue
        default = ours.get(name, p.default)
        fields.append((name, Any, ranged(default, lo=at_least[name]) if name in at_least else field(default=default)))
    return make_dataclass("TrainerConfig", fields)


TrainerConfig = _trainer_schema()


@dataclass
class PathsConfig:
    root_dir: str = "."
    data_dir: str = "${paths.root_dir}/data"
    log_dir: str = "${paths.root_dir}/logs"
    output_dir: str = "${hydra:runtime.output_dir}"


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)  # type: ignore[valid-type]
    logger: dict[str, Any] = field(default_factory=dict)
    callbacks: dict[str, Any] = field(default_factory=dict)
    paths: PathsConfig = field(default_factory=PathsConfig)
    experiment_name: str = "default"  # W&B group and output folder; each experiment sets its own
    project: str = "alexnet-lit"  # W&B project
    tags: list[str] = field(default_factory=list)
    seed: int | None = ranged(0, 0, 2**32 - 1)  # 0 included; None for no seeding (torch seeds are uint32)
    run_id: str | None = None  # the run folder's name under runs/ (null: the checkpoint's, SLURM's job, the time)
    ckpt_path: str | None = None  # a checkpoint to resume from, or "last": the newest one of the run folder
    checkpoint_every_n_steps: int | None = ranged(1000, lo=1)  # checkpoints/step.ckpt (null: per epoch only)
    test: bool = True  # after fit, test the best checkpoint on the centre crop and the 10-crop view
    out: str | None = None  # alexnet-eval's JSON result (null: <checkpoint>.eval.json beside the checkpoint)


@dataclass
class PrepareConfig:
    """alexnet-prepare's keys (conf/prepare.yaml adds none): the store of data=imagenet_prepared."""

    root: str = MISSING  # raw ImageNet: ROOT/train/<wnid>/*, ROOT/val/<wnid>/* (or the archives, archives=true)
    archives: bool = False  # root holds the official ILSVRC-2012 archives; torchvision unpacks them into root first
    out_dir: str = MISSING
    splits: list[str] = field(default_factory=lambda: ["train", "val"])
    workers: int | None = ranged(None, lo=1)  # null: one per core (machine.default_workers)
    chunk_size: int = ranged(256, lo=1)  # images per unit of work (and of redone work after an interruption)
    skip_bad: bool = False  # true: leave undecodable files out, listed in manifest.json (default: list, exit 1)
    custom_classes: bool = False  # true: class folders need not be ILSVRC wnids
    save_every: float = ranged(5.0, lo=0)  # seconds between progress saves
    overwrite: bool = False  # out_dir holds a store of another source: rebuild it (default: refuse, naming both)
    size: int = ranged(SIDE, lo=16)  # section 2: shorter side to 256, central square; smaller for CPU proxies


@dataclass
class ReportConfig:
    """alexnet-report (cli/report.py)."""

    runs: Any = MISSING  # a sweep folder (logs/multiruns/<id>), a run folder, a list; or wandb:ENTITY/PROJECT/GROUP
    out_dir: str = MISSING  # report.md, report.json and the PNG plots go here
    baseline: str | None = None  # the experiment the ablations are compared with (null: the paper's recipe, paper)
    wandb: bool = False  # also create a W&B report of the sweep (online; pip install -e .[report])
    entity: str | None = None  # W&B entity for the report (null: the API key's default)
    project: str = "alexnet-lit"


@dataclass
class PredictConfig:
    """alexnet-predict (cli/predict.py)."""

    ckpt_path: str = MISSING
    inputs: Any = MISSING  # an image file, a folder (searched recursively) or a list of them
    ten_crop: bool = False  # average the softmax over the 10-crop view (section 4.1) instead of the centre crop
    top_k: int = ranged(5, lo=1)
    batch_size: int = ranged(32, lo=1)
    out: str | None = "predictions.jsonl"  # JSON lines, one per input (null: none; "-": on stdout, no table)
    device: str = "auto"  # auto: the GPU when there is one


@dataclass
class KernelsConfig:
    """alexnet-kernels (cli/kernels.py): Figure 3 of the paper."""

    ckpt_path: str = MISSING
    out: str = "conv1.png"
    scale: int = ranged(4, lo=1)  # screen pixels per kernel pixel


@dataclass
class NeighboursConfig:
    """alexnet-neighbours (cli/neighbours.py): Figure 4 of the paper."""

    ckpt_path: str = MISSING
    images: Any = MISSING  # the query images: a file, a folder or a list of them
    train: Any = None  # the images to search (null: the checkpoint's training set is not known; give a folder)
    k: int = ranged(6, lo=1)  # the paper shows six neighbours
    out_dir: str = "neighbours"
    batch_size: int = ranged(64, lo=1)
    limit: int | None = ranged(None, lo=1)  # at most this many training images (sorted order), null: all
    device: str = "auto"


T = TypeVar("T")


def build(schema: type[T], values: Any = None, key: str = "") -> T:
    """``values`` (a dict, a DictConfig, or already a ``schema``) checked against ``schema`` and filled with its
    defaults: the one way constructors turn keyword arguments into a config. Errors name the key."""
    if not isinstance(values, schema):
        try:
            node = OmegaConf.merge(OmegaConf.structured(schema), values or {})
            values = OmegaConf.to_object(node)
        except OmegaConfBaseException as e:
            raise ConfigError(describe_error(e, key)) from None
    check_ranges(values, key)
    return values


def describe_error(e: OmegaConfBaseException, key: str = "") -> str:
    """One line for an OmegaConf error: the full key, what is wrong, what to do."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, MissingMandatoryValue

    name = ".".join(k for k in (key, str(getattr(e, "full_key", None) or "")) if k)
    message = (getattr(e, "msg", None) or str(e)).splitlines()[0]
    if isinstance(e, (ConfigKeyError, ConfigAttributeError)):
        message += " (no such setting: `python train.py --cfg job` lists every key)"
    elif isinstance(e, MissingMandatoryValue):
        message = "missing: give it on the command line"
    return f"{name}: {message}" if name else message


def plain(cfg: Any) -> dict[str, Any]:
    """A config (DictConfig or dataclass) as plain Python containers, enums as strings: what checkpoints keep."""
    node = cfg if isinstance(cfg, DictConfig) else OmegaConf.structured(cfg)
    return OmegaConf.to_container(node, resolve=True, enum_to_str=True, throw_on_missing=True)


def alexnet_else(arch: str, on_alexnet: Any, otherwise: Any) -> Any:
    """${alexnet_else:${model.arch},A,B} (conf/debug/tiny.yaml): A on AlexNet, B on a CIFAR net, whose layer files
    fix the sizes that AlexNet's switches change (models/cuda_convnet.py ALEXNET_ONLY)."""
    return on_alexnet if getattr(arch, "value", arch) == "alexnet" else otherwise


def register() -> None:
    from alexnet_lit.machine import cpu_precision

    # ${cpu_precision:} in conf/trainer/cpu.yaml: bf16 autocast where the CPU has bf16 instructions, else fp32
    OmegaConf.register_new_resolver("cpu_precision", cpu_precision, replace=True)
    OmegaConf.register_new_resolver("alexnet_else", alexnet_else, replace=True)
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
    ConfigStore.instance().store(name="prepare_schema", node=PrepareConfig)
    ConfigStore.instance().store(name="report_schema", node=ReportConfig)
    ConfigStore.instance().store(name="predict_schema", node=PredictConfig)
    ConfigStore.instance().store(name="neighbours_schema", node=NeighboursConfig)
    ConfigStore.instance().store(name="kernels_schema", node=KernelsConfig)


register()


def validate(cfg: DictConfig, stats_given: bool = False) -> None:
    """Checks across groups, before any data is touched (entry points call it through ``checks.check``).
    Raises ConfigError naming the keys. ``stats_given``: the training-set statistics come with a checkpoint."""
    d = build(DataConfig, plain(cfg.data), "data")  # data first: the model's num_classes follows it
    m = build(ModelConfig, plain(cfg.model), "model")
    for name in ("seed", "checkpoint_every_n_steps"):  # the ranged top-level keys (the groups: build, above)
        check_field(TrainConfig, name, cfg.get(name), name)
    trainer = {k: v for k, v in plain(cfg.trainer).items() if k != "_target_"}
    check_ranges(TrainerConfig(**trainer), "trainer")
    check_data(d, stats_given)
    if len(d.mean) != m.in_channels or len(d.std) != m.in_channels:
        raise ConfigError(
            f"data.mean and data.std need one value per input channel (model.in_channels={m.in_channels}), "
            f"got {len(d.mean)} and {len(d.std)}"
        )


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
