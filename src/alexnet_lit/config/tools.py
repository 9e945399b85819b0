"""The keys of the other entry points (alexnet-prepare, -report, -predict, -kernels, -neighbours), one schema
each; their YAML files (conf/<name>.yaml) add none."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from alexnet_lit.config.choices import Chroma, StoreFormat
from alexnet_lit.config.data import SIDE
from alexnet_lit.config.fields import ranged


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
    format: StoreFormat = StoreFormat.jpeg  # jpeg: ~1/8 of raw's bytes, decoded when read (README "Which store")
    quality: int = ranged(90, lo=1, hi=100)  # format=jpeg: libjpeg's quality (PSNR per quality: README)
    chroma: Chroma = Chroma.full  # format=jpeg: colour resolution, 4:4:4 (full) or 4:2:0 (half)


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
