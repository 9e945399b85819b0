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


class StoreCrop:
    """Crop (and flip) a (256, 256, 3) uint8 store row, staying HWC: a contiguous row copy, ~30,000 crops/s on
    one core, where a CHW transpose per sample costs 4x more. The batch is (N, H, W, 3) and becomes NCHW on the
    device by a free ``movedim`` (channels_last memory, which the model wants anyway).
    ``mode``: ``random`` (train), ``centre`` or ``ten`` (the 10-crop view: five patches and their mirrors)."""

    def __init__(self, size: int, mode: str = "random", flip: bool = True) -> None:
        self.size, self.mode, self.flip = size, mode, flip

    def __call__(self, img: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.asarray(img))
        h, w, c = x.shape[0], x.shape[1], self.size
        if self.mode == "random":
            top, left = (int(v) for v in torch.randint(0, h - c + 1, (2,)))
            patch = x[top : top + c, left : left + c]
            return patch.flip(1) if self.flip and bool(torch.rand(()) < 0.5) else patch.contiguous()
        corners = [(0, 0), (0, w - c), (h - c, 0), (h - c, w - c), ((h - c) // 2, (w - c) // 2)]
        if self.mode == "centre":
            top, left = corners[4]
            return x[top : top + c, left : left + c].contiguous()
        five = [x[t : t + c, s : s + c] for t, s in corners]
        return torch.stack(five + [p.flip(1) for p in five])


def square(resize_size: int) -> list[v2.Transform]:
    """Section 2: shorter side to ``resize_size``, then the central square."""
    return [v2.ToImage(), v2.Resize(resize_size, antialias=True), v2.CenterCrop(resize_size)]


def train_transform(resize_size: int, crop_size: int, flip: bool = True, prepared: bool = False):
    if prepared:
        return StoreCrop(crop_size, "random", flip)
    steps = square(resize_size) + [v2.RandomCrop(crop_size)]
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose([*steps, v2.ToPureTensor()])


def eval_transform(resize_size: int, crop_size: int, ten_crop: bool = False, prepared: bool = False):
    if prepared:
        return StoreCrop(crop_size, "ten" if ten_crop else "centre")
    last = TenCrop(crop_size) if ten_crop else v2.CenterCrop(crop_size)
    return v2.Compose([*square(resize_size), last, v2.ToPureTensor()])
