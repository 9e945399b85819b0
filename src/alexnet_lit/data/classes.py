"""The canonical ILSVRC-2012 classes: index i is the i-th of the 1,000 sorted wnids, as every ImageNet model uses.

The wnids ship with the package (``imagenet_wnids.txt``); the human-readable names are torchvision's (the same
order). A split on disk that lacks some classes keeps the canonical indices. A class folder whose name is not a
known wnid is an error naming the folder, unless ``data.custom_classes=true`` declares a custom data set (then the
sorted folder names are the classes, as torchvision's ImageFolder does).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path


@cache
def wnids() -> tuple[str, ...]:
    text = resources.files("alexnet_lit.data").joinpath("imagenet_wnids.txt").read_text()
    return tuple(line.strip() for line in text.splitlines() if line.strip())


@cache
def names() -> tuple[str, ...]:
    from torchvision.models import AlexNet_Weights

    return tuple(AlexNet_Weights.IMAGENET1K_V1.meta["categories"])


def wnid_to_index() -> dict[str, int]:
    return {w: i for i, w in enumerate(wnids())}


class UnknownClassFolder(ValueError):
    pass


def class_index(folders: list[Path], custom: bool = False) -> dict[str, int]:
    """Map class-folder names to label indices: canonical ILSVRC indices, or sorted order for a custom set."""
    if custom:
        return {f.name: i for i, f in enumerate(sorted(folders, key=lambda p: p.name))}
    known = wnid_to_index()
    unknown = [f for f in folders if f.name not in known]
    if unknown:
        shown = ", ".join(str(f) for f in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise UnknownClassFolder(
            f"{shown}: not an ILSVRC-2012 wnid (like n01440764). ImageNet class folders must be named by wnid; "
            f"for a data set of your own set data.custom_classes=true"
        )
    return {f.name: known[f.name] for f in folders}


def link_flat_sample(images: Path, root: Path, splits: tuple[str, ...] = ("train", "val")) -> int:
    """Flat ``<wnid>_<name>.JPEG`` files (as ImageNet sample collections name them) -> ``root/<split>/<wnid>/``
    symlinks in the folder layout that alexnet-prepare and ``data=imagenet`` read. Returns the number of images."""
    files = sorted(Path(images).glob("*.JPEG"))
    for f in files:
        for split in splits:
            d = Path(root) / split / f.name.split("_")[0]
            d.mkdir(parents=True, exist_ok=True)
            (d / f.name).symlink_to(f.resolve())
    return len(files)
