"""Per-sample crop and flip on uint8 images (paper section 4.1), in the DataLoader workers.

Train: rescale the shorter side to ``resize_size`` and centre-crop a square (section 2: 256x256), then a random
``crop_size`` crop (224, or 227 as Caffe) and a horizontal flip. Eval: the centre ``crop_size`` crop, or the
10-crop view (ten_crop.py). Samples stay uint8 until the batch is on the device, where the float work happens
(``AlexNetDataModule.on_after_batch_transfer``), so workers move 4x fewer bytes and the GPU does the arithmetic.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from alexnet_lit.data.ten_crop import TenCrop


def square(resize_size: int) -> list[v2.Transform]:
    """Section 2: shorter side to ``resize_size``, then the central square."""
    return [v2.ToImage(), v2.Resize(resize_size, antialias=True), v2.CenterCrop(resize_size)]


def train_transform(resize_size: int, crop_size: int, flip: bool = True) -> v2.Compose:
    steps = square(resize_size) + [v2.RandomCrop(crop_size)]
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose([*steps, v2.ToPureTensor()])


def eval_transform(resize_size: int, crop_size: int, ten_crop: bool = False) -> v2.Compose:
    last = TenCrop(crop_size) if ten_crop else v2.CenterCrop(crop_size)
    return v2.Compose([*square(resize_size), last, v2.ToPureTensor()])


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 [..., C, H, W] -> float, per-channel (x/255 - mean) / std."""
    return (x.float().div_(255.0) - mean[:, None, None]) / std[:, None, None]
