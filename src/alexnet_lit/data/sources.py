"""Where images come from. Every source gives datasets of (uint8 [C, H, W] or [10, C, H, W], label) samples.

- ``generated``: the embedded shapes set (generated.py), drawn on first use into the cache.
- ``folder``: ``root/train/<wnid>/*`` and ``root/val/<wnid>/*`` (ImageNet's usual layout), decoded and resized on
  the fly; labels are the canonical ILSVRC indices (classes.py) unless ``data.custom_classes=true``. The test
  split is ``val`` (the paper reports validation results for ILSVRC-2012).
- ``archives``: the official ``ILSVRC2012_img_train.tar``, ``ILSVRC2012_img_val.tar`` and
  ``ILSVRC2012_devkit_t12.tar.gz`` in ``root``: torchvision.datasets.ImageNet unpacks them once into the folder
  layout, with validation labels from the devkit's meta.mat (ILSVRC2012_ID order), then ``folder`` reads it.
- ``prepared``: the 256 px store written by alexnet-prepare (store.py).
- ``cifar10``: ``root/train/<class>/*`` and ``root/test/<class>/*``; with ``data.download=true`` and no folder,
  torchvision downloads the python version into ``root``. ``test`` serves as val and test.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image
from torch.utils.data import Dataset
from torchvision import datasets

from alexnet_lit.config import SIDE, Normalize, Source
from alexnet_lit.data import jpeg
from alexnet_lit.data.classes import UnknownClassFolder, class_index
from alexnet_lit.data.generated import dataset_dir, ensure_generated
from alexnet_lit.data.store import MissingStore, PreparedSplit, check_store, store_size


class MissingData(FileNotFoundError):
    pass


class DecodeError(OSError):
    pass


def rgb_loader(path: str, min_size: int = SIDE) -> Image.Image:
    """PIL decode to RGB (CMYK, grayscale, palette and PNG-named-.JPEG included); errors name the file.
    EXIF orientation is ignored, as in the prepared store."""
    try:
        with Image.open(path) as im:
            im.draft("RGB", (min_size, min_size))
            return im.convert("RGB")
    except (OSError, ValueError, SyntaxError) as e:
        raise DecodeError(f"{path}: cannot decode ({type(e).__name__}: {e}); remove or replace the file") from e


class CanonicalImageFolder(datasets.ImageFolder):
    """ImageFolder whose labels are ILSVRC indices (or sorted folder names for a custom set). With ``skip_bad`` an
    undecodable file is left out of its batch (``skip_bad_collate``) with a warning naming it, instead of ending
    the run."""

    def __init__(self, root: str, transform: Callable, custom_classes: bool, min_size: int,
                 skip_bad: bool = False) -> None:
        self.custom_classes, self.skip_bad = custom_classes, skip_bad
        super().__init__(root, transform=transform, loader=lambda p: rgb_loader(p, min_size))

    def __getitem__(self, index: int) -> Any:
        if not self.skip_bad:
            return super().__getitem__(index)
        try:
            return super().__getitem__(index)
        except DecodeError as e:
            warnings.warn(f"data.skip_bad=true: leaving out {e}", stacklevel=1)
            return None

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        folders = sorted(p for p in Path(directory).iterdir() if p.is_dir())
        if not folders:
            raise MissingData(f"{directory} has no class folders")
        mapping = class_index(folders, self.custom_classes)
        return sorted(mapping, key=mapping.get), mapping


def skip_bad_collate(samples: list) -> Any:
    """The batch of the samples that decoded (``data.skip_bad``: undecodable ones arrive as None), collated as
    default_collate does, JPEG bytes for a decode on the device included (jpeg.collate)."""
    return jpeg.collate([s for s in samples if s is not None])


def _folder(path: Path, transform: Callable, key: str, custom: bool, min_size: int,
            skip_bad: bool = False) -> CanonicalImageFolder:
    if not path.is_dir():
        raise MissingData(f"{path} does not exist: {key} must hold train/<class>/ and val/<class>/ image folders")
    try:
        return CanonicalImageFolder(str(path), transform, custom, min_size, skip_bad)
    except UnknownClassFolder:
        raise
    except FileNotFoundError as e:  # torchvision's message names the folder but not the key
        raise MissingData(f"{path}: {e}; check {key}") from e


def unpack_archives(root: Path) -> None:
    """Official ILSVRC-2012 archives -> root/train/<wnid>/, root/val/<wnid>/ via torchvision's own parsing."""
    from torchvision.datasets import imagenet

    if not (root / imagenet.META_FILE).is_file():
        imagenet.parse_devkit_archive(str(root))
    if not (root / "train").is_dir():
        imagenet.parse_train_archive(str(root))
    if not (root / "val").is_dir():
        imagenet.parse_val_archive(str(root))


def build(source: str, root: str | None, num_classes: int, transforms: dict[str, Callable], cache_dir: str,
          generated: dict, download: bool = False, custom_classes: bool = False,
          resize_size: int = SIDE, skip_bad: bool = False, encoded: bool = False) -> dict[str, Dataset]:
    """``transforms`` maps split name (train, val, test, test_10crop) to its transform. ``encoded``: a JPEG store's
    training samples stay JPEG bytes, for a decode on the device (data.augment_on=device)."""
    eval_split = "val"
    if source == "generated":
        base, key, custom = ensure_generated(cache_dir, **generated), "data.generated", True
    elif source == "cifar10":
        base, key, custom, eval_split = Path(root).expanduser(), "data.root", True, "test"
        if download and not (base / "train").is_dir():
            return {split: datasets.CIFAR10(str(base), train=split == "train", transform=t, download=True)
                    for split, t in transforms.items()}
    elif source in ("folder", "archives"):
        base, key, custom = Path(root).expanduser(), "data.root", custom_classes
        if source == "archives":
            unpack_archives(base)
    elif source == "prepared":
        try:
            return {s: PreparedSplit(root, "train" if s == "train" else "val", t, encoded and s == "train", skip_bad)
                    for s, t in transforms.items()}
        except MissingStore as e:
            raise MissingData(str(e)) from e
    else:
        raise ValueError(f"data.source={source!r}: expected generated, folder, archives, prepared or cifar10")
    out = {}
    for split, t in transforms.items():
        path = base / ("train" if split == "train" else eval_split)
        out[split] = _folder(path, t, key, custom, resize_size, skip_bad)
        top = max(out[split].class_to_idx.values())
        if top >= num_classes:
            raise MissingData(f"{path}: label {top} needs data.num_classes >= {top + 1} (it is {num_classes})")
    return out


def prepare(source: str, root: str | None, cache_dir: str, generated: dict, download: bool = False) -> None:
    """Once per node, before setup: generate, download or unpack what the source needs."""
    if source == "generated":
        ensure_generated(cache_dir, **generated)
    elif source == "cifar10" and download and not (Path(root).expanduser() / "train").is_dir():
        datasets.CIFAR10(str(Path(root).expanduser()), train=True, download=True)
        datasets.CIFAR10(str(Path(root).expanduser()), train=False, download=True)
    elif source == "archives":
        unpack_archives(Path(root).expanduser())


def check_source(d: Any, splits: tuple[str, ...] = ("train", "val")) -> None:
    """Before any work: the folders and files the data config reads exist (data.root first, then the statistics),
    and the cache for generated data can be written. Errors name the key and say what to do."""
    from alexnet_lit.paths import check_writable

    source = Source(d.source)
    if source == Source.generated:
        g = d.generated
        made = dataset_dir(d.cache_dir, g.classes, g.train_per_class, g.val_per_class, g.image_size, g.seed)
        if not (made / "manifest.json").is_file():
            check_writable(d.cache_dir, "data.cache_dir ($ALEXNET_LIT_CACHE)")
        return
    root = Path(d.root).expanduser()
    if source == Source.cifar10 and d.download:
        return check_writable(root, "data.root")
    if not root.is_dir():
        raise MissingData(f"data.root={d.root}: no such folder; point data.root to the {source.value} data")
    if source == Source.folder and (root / "manifest.json").is_file():
        raise MissingData(f"data.root={d.root} is a store made by alexnet-prepare, not image folders: add "
                          f"data=imagenet_prepared")
    if source == Source.prepared:
        for split in splits:
            check_store(root, split)
        if (size := store_size(root)) != d.resize_size:
            raise MissingData(f"data.resize_size={d.resize_size}, but the store in data.root={d.root} holds "
                              f"{size}x{size} images (alexnet-prepare size={size}): set data.resize_size={size}")
    elif source in (Source.folder, Source.cifar10):
        for split in splits:
            folder = root / ("test" if source == Source.cifar10 and split == "val" else split)
            if not folder.is_dir():
                raise MissingData(f"{folder} does not exist: data.root must hold {folder.name}/<class>/ image folders")
    needs_stats = d.normalize == Normalize.mean_image or d.lighting.enabled
    if needs_stats and d.stats_path and not Path(d.stats_path).expanduser().is_file():
        raise MissingStore(f"data.stats_path={d.stats_path}: not found; the statistics come from alexnet-prepare, "
                           f"which writes stats.npz into the store")
