"""Local response normalization (paper section 3.3) and its three readings of alpha.

The paper prints

    b[i] = a[i] / (k + alpha * sum_{j=max(0, i-n/2)}^{min(N-1, i+n/2)} a[j]^2) ** beta

with k=2, n=5, alpha=1e-4, beta=0.75 (the defaults of ``LRNConfig`` in config/model.py). Implementations disagree on
alpha:

- ``paper``: alpha multiplies the sum of squares, exactly as printed.
- ``cuda_convnet``: the authors' released code divides alpha by n (it normalizes by the mean of the squares).
- ``caffe``: alpha/n as cuda-convnet, and k=1 (bvlc_alexnet's LRN layers).

``torch.nn.functional.local_response_norm`` computes ``k + alpha/n * sum``, so every convention is a choice of
the (alpha, k) we hand it. With the paper's two towers each GPU normalized only its own kernels; ``groups=2``
keeps the sum inside a tower instead of letting it cross from kernel 48 into kernel 49.

The constants were chosen for the paper's input scale, raw 8-bit pixels minus the mean (``data.pixel_max=255``):
at the paper's init the term alpha * sum a^2 at lrn1 is about 0.03 on real images there, and about 5e-7 with
inputs divided by 255, where LRN degenerates into a constant division by k^beta.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from alexnet_lit.config import LRNConfig, LRNConvention


def effective_alpha_k(cfg: LRNConfig) -> tuple[float, float]:
    """The (alpha, k) to pass to torch's LRN (which divides alpha by ``size``) for the configured convention."""
    return {
        LRNConvention.paper: (cfg.alpha * cfg.size, cfg.k),
        LRNConvention.cuda_convnet: (cfg.alpha, cfg.k),
        LRNConvention.caffe: (cfg.alpha, 1.0),
    }[LRNConvention(cfg.convention)]


class LocalResponseNorm(nn.Module):
    """Cross-channel LRN, applied within each of ``groups`` towers."""

    def __init__(self, cfg: LRNConfig, groups: int = 1) -> None:
        super().__init__()
        self.cfg, self.groups = cfg, groups
        self.size, self.beta = cfg.size, cfg.beta
        self.alpha, self.k = effective_alpha_k(cfg)

    def denominator(self, x: torch.Tensor) -> torch.Tensor:
        """k + alpha * sum a^2 in the configured convention (before the power beta), for inspection and tests."""
        sq = x.pow(2).reshape(x.shape[0] * self.groups, 1, x.shape[1] // self.groups, *x.shape[2:])
        summed = F.avg_pool3d(F.pad(sq, (0, 0, 0, 0, self.size // 2, (self.size - 1) // 2)), (self.size, 1, 1),
                              stride=1)
        return (self.k + self.alpha * summed).reshape(x.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.within(x, self.groups)

    def within(self, x: torch.Tensor, groups: int) -> torch.Tensor:
        """LRN of ``x`` with the sum kept inside each of ``groups`` equal channel blocks. Under the tower strategy
        a device holds one tower's kernels only: models/towers.py calls this with groups=1."""
        if groups == 1:
            return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)
        b, c, h, w = x.shape
        y = F.local_response_norm(x.reshape(b * groups, c // groups, h, w), self.size, self.alpha, self.beta, self.k)
        return y.reshape(b, c, h, w)

    def settings(self) -> str:
        c = self.cfg
        return f"LRN n={c.size} k={c.k:g} alpha={c.alpha:g} beta={c.beta:g} ({LRNConvention(c.convention).value})"

    def extra_repr(self) -> str:
        return f"{self.settings()}, groups={self.groups}"
