"""A locally connected layer: a convolution whose filters are not shared, one set per output position
(cuda-convnet's ``type=local``; the ``local3``/``local4`` layers of the CIFAR-10 nets that section 3.3's 11% and
13% come from).

Output size as cuda-convnet computes it (layer.py: modulesX = 1 + ceil((2 pad + size - filter) / stride)); one
bias per filter and position (cuda-convnet's local layers have no shared biases). Weights (positions, filters,
in_channels x k x k); computed as one batched matrix product over the positions of the input's patches.

The patches are the padded input's ``Tensor.unfold`` views, copied once into (positions, batch, in x k x k), not
``F.unfold``: on a CPU, for local3 of cifar_11pct (batch 128, 64 x 6 x 6, 3x3 pad 1), ``F.unfold`` and the bmm of
its permuted (strided) result took about 20 times as long as the copy and the bmm of contiguous patches; forward
and backward 2.5-4x faster (alternating pairs). The same numbers out.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def output_size(size: int, kernel: int, padding: int, stride: int) -> int:
    return 1 + math.ceil((2 * padding + size - kernel) / stride)


class LocallyConnected2d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, input_size: int, padding: int = 0,
                 stride: int = 1) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.padding, self.stride, self.input_size = padding, stride, input_size
        self.out_size = output_size(input_size, kernel_size, padding, stride)
        if (self.out_size - 1) * stride + kernel_size > input_size + 2 * padding:
            raise ValueError(f"locally connected {kernel_size}x{kernel_size}/{stride} pad {padding}: the last of "
                             f"{self.out_size} positions would leave the padded {input_size} px input")
        positions, self.fan_in = self.out_size**2, in_channels * kernel_size**2
        self.weight = nn.Parameter(torch.empty(positions, out_channels, self.fan_in))
        self.bias = nn.Parameter(torch.zeros(out_channels, self.out_size, self.out_size))
        nn.init.normal_(self.weight, 0.0, 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, k, p, s = x.shape[0], self.kernel_size, self.padding, self.stride
        views = F.pad(x, (p, p, p, p)).unfold(2, k, s).unfold(3, k, s)  # (B, C, out, out, k, k), no copy
        views = views[:, :, : self.out_size, : self.out_size]
        patches = views.permute(2, 3, 0, 1, 4, 5).reshape(self.out_size**2, b, self.fan_in)  # one copy; (C, k, k)
        out = torch.bmm(patches, self.weight.transpose(1, 2))  # (positions, B, out)
        return out.permute(1, 2, 0).reshape(b, self.out_channels, self.out_size, self.out_size) + self.bias

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel {self.kernel_size}, padding {self.padding}, "
                f"stride {self.stride}, {self.input_size} -> {self.out_size} px, unshared")
