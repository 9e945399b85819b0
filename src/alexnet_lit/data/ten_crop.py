"""The 10-crop test view (paper section 4.1): "the four corner patches and the center patch as well as their
horizontal reflections (hence ten patches in all)", stacked into one [10, C, H, W] sample. The network's softmax
is averaged over the ten (``AlexNetModule.probabilities``)."""

from __future__ import annotations

import torch
from torchvision.transforms import v2


class TenCrop(v2.Transform):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.crops = v2.TenCrop(size)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return torch.stack(list(self.crops(img)))
