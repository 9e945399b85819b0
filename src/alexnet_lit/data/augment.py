"""Per-sample crop and flip on uint8 images (paper section 4.1), in the DataLoader workers.

Train: rescale the shorter side to ``resize_size`` and take the central square (section 2: 256x256; the prepared
store holds exactly that, so it skips this step), then a random ``crop_size`` crop (224, or 227 as Caffe) and a
horizontal flip. Eval: the centre ``crop_size`` crop, or the 10-crop view (ten_crop.py). Samples stay uint8 until
the batch is on the device, where the float work happens (``AlexNetDataModule.on_after_batch_transfer``: PCA
lighting, mean subtraction), so workers move 4x fewer bytes and the GPU does the arithmetic.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchvision.transforms import v2

from alexnet_lit.data.jpeg import Encoded
from alexnet_lit.data.ten_crop import TenCrop


class StoreCrop:
    """Crop (and flip) a (256, 256, 3) uint8 store row, staying HWC: a contiguous row copy, where a CHW transpose
    per sample costs 4x more (``make bench-data`` prints this machine's rate). The batch is (N, H, W, 3) and
    becomes NCHW on the device by a free ``movedim`` (channels_last memory, which the model wants anyway).
    ``mode``: ``random`` (train), ``centre``, ``row``: the whole row, for the 10-crop view cut on the device
    (ten_crop.ten_crops: 7.7x fewer bytes than shipping ten crops), or ``draw``: the whole row and the random
    crop's (top, left, flip), drawn exactly as ``random`` draws them, for ``crop_batch`` on the device."""

    def __init__(self, size: int, mode: str = "random", flip: bool = True) -> None:
        self.size, self.mode, self.flip = size, mode, flip

    def __call__(self, img: np.ndarray | torch.Tensor | Encoded) -> torch.Tensor | tuple[Any, torch.Tensor]:
        # a memory-mapped row (raw store), a decoded HWC view (jpeg store) or, for "draw", JPEG bytes
        x = img if isinstance(img, (torch.Tensor, Encoded)) else torch.from_numpy(np.asarray(img))
        h, w, c = x.shape[0], x.shape[1], self.size
        if self.mode in ("random", "draw"):
            top, left = (int(v) for v in torch.randint(0, h - c + 1, (2,)))
            flip = self.flip and bool(torch.rand(()) < 0.5)
            if self.mode == "draw":  # data.augment_on=device: the same draws, applied on the device (crop_batch)
                return x if isinstance(x, Encoded) else x.contiguous(), torch.tensor([top, left, int(flip)])
            patch = x[top : top + c, left : left + c]
            return patch.flip(1).contiguous() if flip else patch.contiguous()
        if self.mode == "row":
            return x.contiguous()
        top, left = (h - c) // 2, (w - c) // 2
        return x[top : top + c, left : left + c].contiguous()


def square(resize_size: int) -> list[v2.Transform]:
    """Section 2: shorter side to ``resize_size``, then the central square."""
    return [v2.ToImage(), v2.Resize(resize_size, antialias=True), v2.CenterCrop(resize_size)]


def crop_batch(rows: torch.Tensor, draws: torch.Tensor, size: int) -> torch.Tensor:
    """[B, H, W, C] rows and [B, 3] (top, left, flip) draws -> [B, size, size, C] crops, mirrored where drawn, in
    one gather on the rows' device: the crops the workers would have cut (``StoreCrop`` "random")."""
    draws = draws.to(rows.device)
    steps = torch.arange(size, device=rows.device)
    top, left, flip = draws[:, 0, None], draws[:, 1, None], draws[:, 2, None].bool()
    cols = left + torch.where(flip, size - 1 - steps, steps)
    return rows[torch.arange(rows.shape[0], device=rows.device)[:, None, None], (top + steps)[:, :, None],
                cols[:, None, :]]


def train_transform(resize_size: int, crop_size: int, flip: bool = True, prepared: bool = False,
                    on_device: bool = False):
    if prepared:
        return StoreCrop(crop_size, "draw" if on_device else "random", flip)
    steps = square(resize_size) + [v2.RandomCrop(crop_size)]
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose([*steps, v2.ToPureTensor()])


def eval_transform(resize_size: int, crop_size: int, ten_crop: bool = False, prepared: bool = False):
    if prepared:
        return StoreCrop(crop_size, "row" if ten_crop else "centre")
    last = TenCrop(crop_size) if ten_crop else v2.CenterCrop(crop_size)
    return v2.Compose([*square(resize_size), last, v2.ToPureTensor()])
