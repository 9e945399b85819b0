"""Local response normalization (paper section 3.3) and its three readings of alpha.

The paper prints

    b[i] = a[i] / (k + alpha * sum_{j=max(0, i-n/2)}^{min(N-1, i+n/2)} a[j]^2) ** beta

with k=2, n=5, alpha=1e-4, beta=0.75. Implementations disagree on alpha:

- ``paper``: alpha multiplies the sum of squares, exactly as printed.
- ``cuda_convnet``: the authors' released code divides alpha by n (it normalizes by the mean of the squares).
- ``caffe``: alpha/n as cuda-convnet, and k=1 (bvlc_alexnet's LRN layers).

``torch.nn.functional.local_response_norm`` computes ``k + alpha/n * sum``, so every convention is a choice of
the (alpha, k) we hand it. With the paper's two towers each GPU normalized only its own kernels; ``groups=2``
keeps the sum inside a tower instead of letting it cross from kernel 48 into kernel 49.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

CONVENTIONS = ("paper", "cuda_convnet", "caffe")


def effective_alpha_k(convention: str, size: int, alpha: float, k: float) -> tuple[float, float]:
    """The (alpha, k) to pass to torch's LRN (which divides alpha by ``size``) for a convention."""
    if convention == "paper":
        return alpha * size, k
    if convention == "cuda_convnet":
        return alpha, k
    if convention == "caffe":
        return alpha, 1.0
    raise ValueError(f"model.lrn.convention={convention!r}: expected one of {', '.join(CONVENTIONS)}")


class LocalResponseNorm(nn.Module):
    """Cross-channel LRN, applied within each of ``groups`` towers."""

    def __init__(
        self,
        size: int = 5,
        alpha: float = 1e-4,
        beta: float = 0.75,
        k: float = 2.0,
        convention: str = "paper",
        groups: int = 1,
    ) -> None:
        super().__init__()
        self.size, self.beta, self.groups, self.convention = size, beta, groups, convention
        self.alpha, self.k = effective_alpha_k(convention, size, alpha, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.groups == 1:
            return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)
        b, c, h, w = x.shape
        y = F.local_response_norm(
            x.reshape(b * self.groups, c // self.groups, h, w), self.size, self.alpha, self.beta, self.k
        )
        return y.reshape(b, c, h, w)

    def extra_repr(self) -> str:
        return f"size={self.size}, convention={self.convention}, groups={self.groups}, beta={self.beta}"
