"""The 10-crop test view (paper section 4.1): "the four corner patches and the center patch as well as their
horizontal reflections (hence ten patches in all)", averaging "the predictions made by the network's softmax
layer on the ten patches". Everything the view is, in one place:

1. cut: on the host from a decoded image (``TenCrop``, torchvision's), or on the device from the prepared store's
   whole rows (``ten_crops``): the loader ships the 256x256 uint8 row, 196,608 bytes per image, instead of ten
   224x224 crops, 1,505,280 bytes (7.7x more through the workers, pinned memory and the host-to-device copy);
2. batch: one [10, C, H, W] sample per image, so a batch is 5-D (``is_view``); its loader is the test loader at
   ``LOADER`` with a tenth of the batch size (``batch_size``: the same memory per step);
3. average: the softmax of each crop, averaged over the ten (``probabilities``); logged with the suffix
   metrics.TEN_CROP.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchvision.transforms import v2

SPLIT = "test_10crop"  # the data module's name for the view's split
LOADER = 1  # its index among the test loaders (0: the centre crop)


class TenCrop(v2.Transform):
    """A decoded image -> [10, C, size, size]."""

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


def batch_size(per_step: int) -> int:
    """Images per batch of the view: ten crops each."""
    return max(1, per_step // 10)


def is_view(x: torch.Tensor) -> bool:
    """A [B, 10, C, H, W] batch of the view (a plain batch is [B, C, H, W])."""
    return x.ndim == 5


def probabilities(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Softmax of ``forward``, in fp32, averaged over the crops of a view's batch."""
    if is_view(x):
        b, n = x.shape[:2]
        return forward(x.flatten(0, 1)).float().softmax(-1).view(b, n, -1).mean(1)
    return forward(x).float().softmax(-1)
