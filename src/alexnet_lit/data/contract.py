"""The input contract: how an image must be prepared for a network trained on this data (one object, one home).

    alexnet-eval ckpt_path=.../last.ckpt data.root=STORE     # the checkpoint's contract prepares the val images
    alexnet-predict ckpt_path=.../last.ckpt inputs=photo.jpg  # the same contract, one file at a time

Crop and resize size, pixel scale, the normalization with its mean / std or mean image, and the classes (label
index -> name). The data module builds it (``AlexNetDataModule.contract``) and keeps it in every checkpoint with
its own state (``state_dict``: Lightning stores it under the data module's key); a resume compares it with the
data it is given; eval, predict, neighbours and kernels read it back with ``InputContract.of(checkpoint)`` and
prepare inputs with ``normalizer()``, as timm's one ``pretrained_cfg`` per model. Checkpoints written before
2026-12-03 kept it at the top level (``checkpoint.upgrade`` moves it).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch

from alexnet_lit.checkpoint import DATA_STATE, upgrade
from alexnet_lit.config import LightingConfig, Normalize
from alexnet_lit.data.lighting import Normalizer

KEY = "input_contract"  # its key inside the data module's state
DATA_KEYS = ("crop_size", "resize_size", "pixel_max", "normalize", "mean", "std")  # the data.* keys it fixes


@dataclass
class InputContract:
    crop_size: int
    resize_size: int
    pixel_max: float
    normalize: str
    mean: list[float]
    std: list[float]
    mean_image: torch.Tensor | None = None  # (H, W, 3) on the 0..255 scale, as stats.npz has it
    classes: list[str] | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain values and one tensor: a checkpoint loads with torch.load(weights_only=True)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.classes is None:
            out.pop("classes")
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputContract:
        return cls(**{f.name: d.get(f.name) for f in fields(cls)})

    @classmethod
    def of(cls, checkpoint: dict[str, Any]) -> InputContract | None:
        """The contract a checkpoint was trained with (None: written before alexnet-lit recorded one)."""
        saved = upgrade(checkpoint).get(DATA_STATE, {}).get(KEY)
        return None if saved is None else cls.from_dict(saved)

    def differences(self, other: InputContract) -> str:
        """The keys where two contracts differ, as 'key: A (checkpoint) vs B (now)' ('' when they agree)."""
        out = []
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name == "classes" and (a is None or b is None):  # one side does not know its class names
                continue
            if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
                same = isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and \
                    torch.allclose(a.float(), b.float(), atol=1e-3)
                a, b = ("statistics" if a is not None else None), ("other statistics" if b is not None else None)
            else:
                same = a == b
            if not same:
                out.append(f"{f.name}: {a} (checkpoint) vs {b} (now)")
        return "; ".join(out)

    def stats(self) -> dict[str, torch.Tensor] | None:
        """The statistics it carries, as data.stats_path would give them (the mean image)."""
        return None if self.mean_image is None else {"mean_image": self.mean_image}

    def normalizer(self) -> Normalizer:
        """uint8 batches -> the network's input, as in training without its augmentation (no lighting)."""
        return Normalizer(Normalize(self.normalize), self.pixel_max, self.mean, self.std,
                          LightingConfig(enabled=False), self.stats())
