"""Per-sample crop and flip on uint8 images (paper section 4.1), in the DataLoader workers.

Train: rescale the shorter side to ``resize_size`` and take the central square (section 2: 256x256; the prepared
store holds exactly that, so it skips this step), then a random ``crop_size`` crop (224, or 227 as Caffe) and a
horizontal flip. Eval: the centre ``crop_size`` crop, or the 10-crop view (ten_crop.py). Samples stay uint8 until
the batch is on the device, where the float work happens (``AlexNetDataModule.on_after_batch_transfer``: PCA
lighting, mean subtraction), so workers move 4x fewer bytes and the GPU does the arithmetic.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms import v2

from alexnet_lit.data.ten_crop import TenCrop


class HWCToTensor(v2.Transform):
    """A (H, W, 3) uint8 array from the store -> a (3, H, W) uint8 tensor view (no copy)."""

    def forward(self, img: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(img)).permute(2, 0, 1)


def square(resize_size: int, prepared: bool) -> list[v2.Transform]:
    """Section 2: shorter side to ``resize_size``, then the central square; the store is already square."""
    if prepared:
        return [HWCToTensor()] if resize_size == 256 else [HWCToTensor(), v2.Resize(resize_size, antialias=True)]
    return [v2.ToImage(), v2.Resize(resize_size, antialias=True), v2.CenterCrop(resize_size)]


def train_transform(resize_size: int, crop_size: int, flip: bool = True, prepared: bool = False) -> v2.Compose:
    steps = square(resize_size, prepared) + [v2.RandomCrop(crop_size)]
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose([*steps, v2.ToPureTensor()])


def eval_transform(resize_size: int, crop_size: int, ten_crop: bool = False, prepared: bool = False) -> v2.Compose:
    last = TenCrop(crop_size) if ten_crop else v2.CenterCrop(crop_size)
    return v2.Compose([*square(resize_size, prepared), last, v2.ToPureTensor()])
