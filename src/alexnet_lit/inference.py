"""A trained network and its inputs outside training: alexnet-predict, alexnet-neighbours, the conv1 kernels.

The network is rebuilt from the checkpoint's own hyperparameters (loaded with weights_only=True) and images are
prepared by its input contract, as they were in training: decode to RGB, the shorter side to ``resize_size``, the
central square, the centre crop (or the 10-crop view, section 4.1), then pixel_max x (x - the mean image or
the channel mean / std) on the device. Class names come from the contract (the wnids of ILSVRC, shown with
torchvision's human-readable names, or a custom set's class folders).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import ListConfig
from torchvision.datasets.folder import IMG_EXTENSIONS

from alexnet_lit.checkpoint import read as read_checkpoint
from alexnet_lit.config import ConfigError
from alexnet_lit.data import classes as ilsvrc
from alexnet_lit.data.augment import eval_transform
from alexnet_lit.data.contract import InputContract
from alexnet_lit.data.sources import DecodeError, rgb_loader


def restore(state: dict) -> Any:
    """The AlexNetModule a checkpoint holds (read by checkpoint.read: weights only, older layouts upgraded): its
    ``hyper_parameters`` are the whole ``model`` config, so nothing else is needed. alexnet-eval, -predict,
    -neighbours and -kernels all build it here (Lightning's load_from_checkpoint would read the file again)."""
    from alexnet_lit.module import AlexNetModule

    module = AlexNetModule(**state["hyper_parameters"])
    module.load_state_dict(state["state_dict"])
    return module


def load(ckpt_path: str, device: str | torch.device = "cpu") -> tuple[Any, InputContract]:
    """(AlexNetModule in eval mode on ``device``, the checkpoint's input contract)."""
    state = read_checkpoint(ckpt_path)
    contract = InputContract.of(state)
    if contract is None:
        raise ConfigError(f"ckpt_path={ckpt_path} has no input contract (written before alexnet-lit recorded how "
                          f"inputs were prepared): evaluate it with alexnet-eval and explicit data.* keys")
    return restore(state).eval().to(device), contract


class Preprocess:
    """A file -> the network's input, by a checkpoint's contract: (3, H, W) floats, (10, 3, H, W) for 10 crops."""

    def __init__(self, contract: InputContract, ten_crop: bool = False) -> None:
        self.resize, self.crop = int(contract.resize_size), int(contract.crop_size)
        self.transform = eval_transform(self.resize, self.crop, ten_crop)
        self.normalizer = contract.normalizer()

    def uint8(self, path: str | Path) -> torch.Tensor:
        """Decoded and cropped, still uint8; raises sources.DecodeError naming the file."""
        if Path(path).stat().st_size == 0:
            raise DecodeError(f"{path}: empty file (0 bytes)")
        return self.transform(rgb_loader(str(path), self.resize))

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) or (B, 10, 3, H, W) uint8 -> the network's input on the batch's device."""
        self.normalizer.to(batch.device)
        return self.normalizer(batch, train=False)


def class_names(contract: InputContract, num_classes: int) -> list[str]:
    """A readable name per label index: "tench (n01440764)" for ILSVRC, the folder name for a custom set."""
    names = contract.classes
    if names is None:
        names = list(ilsvrc.wnids()) if num_classes == len(ilsvrc.wnids()) else [f"class {i}" for i in
                                                                                range(num_classes)]
    index = ilsvrc.wnid_to_index()
    readable = ilsvrc.names() if any(n in index for n in names) else None
    return [f"{readable[index[n]]} ({n})" if readable and n in index else n for n in names]


def image_files(inputs: list[str], key: str = "inputs") -> list[Path]:
    """Files named on the command line (each, whatever its suffix) and the images inside folders (recursively,
    by torchvision's image extensions), sorted. A name that does not exist is an error."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item).expanduser()
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMG_EXTENSIONS)
        elif p.exists():
            out.append(p)
        else:
            raise ConfigError(f"{key}={item}: no such file or folder")
    if not out:
        shown = inputs if len(inputs) > 1 else inputs[0]
        raise ConfigError(f"{key}={shown}: no image files there (looked for {', '.join(IMG_EXTENSIONS[:4])}, ...)")
    return out


def as_list(value) -> list[str]:
    return [str(v) for v in value] if isinstance(value, (list, tuple, ListConfig)) else [str(value)]


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"device={name}: {e}") from None
