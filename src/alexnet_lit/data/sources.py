"""Where images come from. Every source gives (train, val, test) datasets of (uint8 [C, H, W], label) samples.

- ``generated``: the embedded shapes set (generated.py), drawn on first use into the cache.
- ``folder``: any ImageFolder layout ``root/train/<class>/*`` and ``root/val/<class>/*`` (ImageNet's usual one);
  the test split is ``val`` (the paper reports ILSVRC-2010/2012 validation results).
- ``cifar10``: ``root/train/<class>/*`` and ``root/test/<class>/*`` (e.g. CIFAR-10 as JPEGs); with
  ``data.download=true`` and no folder, torchvision downloads the python version into ``root``. CIFAR-10 has no
  validation split: ``test`` serves as val and test, as is usual for it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch.utils.data import Dataset
from torchvision import datasets

from alexnet_lit.data.generated import ensure_generated


class MissingData(FileNotFoundError):
    pass


def _image_folder(path: Path, transform: Callable, key: str) -> datasets.ImageFolder:
    if not path.is_dir():
        raise MissingData(f"{path} does not exist: {key} must hold train/<class>/ and val/<class>/ image folders")
    try:
        return datasets.ImageFolder(str(path), transform=transform)
    except FileNotFoundError as e:  # torchvision's message names the folder but not the key
        raise MissingData(f"{path}: {e}; check {key}") from e


def _check_classes(ds: datasets.ImageFolder, num_classes: int, path: Path) -> None:
    if len(ds.classes) != num_classes:
        raise MissingData(
            f"{path} has {len(ds.classes)} class folders but data.num_classes={num_classes}; "
            f"set data.num_classes={len(ds.classes)} or fix the folder"
        )


def build(source: str, root: str | None, num_classes: int, transforms: dict[str, Callable], cache_dir: str,
          generated: dict, download: bool = False) -> dict[str, Dataset]:
    """``transforms`` maps split name (train, val, test) to its transform."""
    if source == "generated":
        base, key, eval_split = ensure_generated(cache_dir, **generated), "data.generated", "val"
    elif source == "cifar10":
        base, key, eval_split = Path(root).expanduser(), "data.root", "test"
        if download and not (base / "train").is_dir():
            return {split: datasets.CIFAR10(str(base), train=split == "train", transform=t, download=True)
                    for split, t in transforms.items()}
    elif source == "folder":
        base, key, eval_split = Path(root).expanduser(), "data.root", "val"
    else:
        raise ValueError(f"data.source={source!r}: expected generated, folder or cifar10")
    out = {}
    for split, t in transforms.items():
        path = base / ("train" if split == "train" else eval_split)
        out[split] = _image_folder(path, t, key)
        _check_classes(out[split], num_classes, path)
    return out


def prepare(source: str, root: str | None, cache_dir: str, generated: dict, download: bool = False) -> None:
    """Once per node, before setup: generate or download what the source needs."""
    if source == "generated":
        ensure_generated(cache_dir, **generated)
    elif source == "cifar10" and download and not (Path(root).expanduser() / "train").is_dir():
        datasets.CIFAR10(str(Path(root).expanduser()), train=True, download=True)
        datasets.CIFAR10(str(Path(root).expanduser()), train=False, download=True)
