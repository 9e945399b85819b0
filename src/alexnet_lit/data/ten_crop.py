"""The 10-crop test view (paper section 4.1): "the four corner patches and the center patch as well as their
horizontal reflections (hence ten patches in all)", stacked into one [10, C, H, W] sample. The network's softmax
is averaged over the ten (``AlexNetModule.probabilities``).

From the prepared store the crops are cut on the device (``ten_crops``): the loader ships the 256x256 uint8 row,
196,608 bytes per image, instead of ten 224x224 crops, 1,505,280 bytes (7.7x more through the workers, pinned
memory and the host-to-device copy)."""

from __future__ import annotations

import torch
from torchvision.transforms import v2


class TenCrop(v2.Transform):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.crops = v2.TenCrop(size)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return torch.stack(list(self.crops(img)))


def ten_crops(rows: torch.Tensor, size: int) -> torch.Tensor:
    """A batch of HWC rows [B, H, W, C] -> [B, 10, size, size, C] on their own device: the corners (top left,
    top right, bottom left, bottom right), the centre, then the same five of the mirrored rows: torchvision's
    TenCrop, crop for crop (the raw-folder path)."""
    h, w = rows.shape[1:3]
    corners = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size), ((h - size) // 2, (w - size) // 2)]
    return torch.stack([r[:, t : t + size, s : s + size] for r in (rows, rows.flip(2)) for t, s in corners], 1)
