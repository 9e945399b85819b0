"""Local response normalization (paper section 3.3), its three readings of alpha, and a fused kernel.

The paper prints

    b[i] = a[i] / (k + alpha * sum_{j=max(0, i-n/2)}^{min(N-1, i+n/2)} a[j]^2) ** beta

with k=2, n=5, alpha=1e-4, beta=0.75 (the defaults of ``LRNConfig`` in config/model.py). Implementations disagree on
alpha:

- ``paper``: alpha multiplies the sum of squares, exactly as printed.
- ``cuda_convnet``: the authors' released code divides alpha by n (it normalizes by the mean of the squares).
- ``caffe``: alpha/n as cuda-convnet, and k=1 (bvlc_alexnet's LRN layers).

Every convention is a choice of (alpha/n, k) in ``s = k + alpha/n * sum a^2`` (torch's form). With the paper's two
towers each GPU normalized only its own kernels; ``groups=2`` keeps the sum inside a tower instead of letting it
cross from kernel 48 into kernel 49.

The kernel (``model.lrn.kernel``). ``F.local_response_norm`` builds the layer from a padded copy, an avg_pool3d,
a pow and a division, in fp32 even under bf16 autocast, and autograd differentiates each: on 2 CPU cores that was
half of the paper net's fp32 step and three quarters of its bf16 step (issue 19). ``fused`` computes the forward
and the closed-form backward (as cuda-convnet's and Caffe's LRN layers do):

    dx[i] = g[i] s[i]^-beta - 2 beta alpha/n a[i] sum_{j: i in window(j)} g[j] a[j] s[j]^(-beta-1)

each as one ``torch.compile``d region (C++ on a CPU, Triton on CUDA), in the input's dtype and memory format with
the window sums accumulated in fp32; s is saved for the backward in the input's dtype. s^-beta is
``rsqrt(s sqrt(s))`` for the paper's beta=0.75 (a generic pow was the kernel's bottleneck: 8x slower on the CPU)
and ``exp(-beta log s)`` otherwise. ``eager`` runs the same closed form uncompiled (``fused``
falls back to it, with a warning, where the compiler cannot run); ``reference`` is ``F.local_response_norm``.

The constants were chosen for the paper's input scale, raw 8-bit pixels minus the mean (``data.pixel_max=255``):
at the paper's init the term alpha * sum a^2 at lrn1 is about 0.03 on real images there, and about 5e-7 with
inputs divided by 255, where LRN degenerates into a constant division by k^beta.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.nn import functional as F

from alexnet_lit.config import LRNConfig, LRNConvention, LRNKernel


def effective_alpha_k(cfg: LRNConfig) -> tuple[float, float]:
    """The (alpha, k) to pass to torch's LRN (which divides alpha by ``size``) for the configured convention."""
    return {
        LRNConvention.paper: (cfg.alpha * cfg.size, cfg.k),
        LRNConvention.cuda_convnet: (cfg.alpha, cfg.k),
        LRNConvention.caffe: (cfg.alpha, 1.0),
    }[LRNConvention(cfg.convention)]


# ---- the closed form, on a view whose axis ``dim`` runs over one tower's channels ---------------------------------

def _window(t: torch.Tensor, dim: int, before: int, after: int) -> torch.Tensor:
    """sum_{d=-before}^{after} t[..., c + d, ...] along ``dim``, zeros outside: n shifted slices of one padded copy
    (inside a compiled region, one loop with n loads an element)."""
    c = t.shape[dim]
    padded = F.pad(t, [0, 0] * (t.dim() - 1 - dim) + [before, after])
    out = padded.narrow(dim, 0, c)
    for d in range(1, before + after + 1):
        out = out + padded.narrow(dim, d, c)
    return out


def _acc(t: torch.Tensor) -> torch.Tensor:
    """fp32 for half and bf16 inputs (a bf16 window sum loses the small neighbours), the input's dtype otherwise."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _scale(a: torch.Tensor, dim: int, n: int, alpha_n: float, k: float) -> torch.Tensor:
    """s = k + alpha/n * sum of a^2 over the window [i - n//2, i + (n-1)//2] (torch's window for even n)."""
    return _window(a * a, dim, n // 2, (n - 1) // 2) * alpha_n + k


def _pow_neg(s: torch.Tensor, beta: float) -> torch.Tensor:
    if beta == 0.75:
        return torch.rsqrt(s * torch.sqrt(s))
    if beta == 0.5:
        return torch.rsqrt(s)
    return torch.exp(torch.log(s) * -beta)


def lrn_forward(x: torch.Tensor, dim: int, n: int, alpha_n: float, beta: float,
                k: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(b, s): the output and the scale, both in the input's dtype (the backward reads s instead of recomputing
    its window: measured 15-30% faster on the CPU; bf16's s costs the gradient one more bf16 rounding)."""
    a = _acc(x)
    s = _scale(a, dim, n, alpha_n, k)
    return (a * _pow_neg(s, beta)).to(x.dtype), s.to(x.dtype)


def lrn_backward(g: torch.Tensor, x: torch.Tensor, s: torch.Tensor, dim: int, n: int, alpha_n: float,
                 beta: float) -> torch.Tensor:
    a, ga, s = _acc(x), _acc(g), _acc(s)
    p = _pow_neg(s, beta)
    back = _window(ga * a * p / s, dim, (n - 1) // 2, n // 2)  # the transposed window: j with i in window(j)
    return (ga * p - (2 * beta * alpha_n) * a * back).to(g.dtype)


EAGER = {"forward": lrn_forward, "backward": lrn_backward}


class _Compiled:
    """``lrn_forward`` and ``lrn_backward`` compiled once a process, or the eager ones after a compiler failure."""

    def __init__(self) -> None:
        self.forward = torch.compile(lrn_forward, dynamic=None)
        self.backward = torch.compile(lrn_backward, dynamic=None)
        self.failed: str | None = None

    def __call__(self, which: str, *args):
        if self.failed is None:
            try:  # a kernel per (dtype, layout, n, constants): more than dynamo's default 8 in one test process
                with torch._dynamo.config.patch(recompile_limit=64):
                    return getattr(self, which)(*args)
            except (torch._dynamo.exc.BackendCompilerFailed, torch._inductor.exc.InductorError,
                    torch._dynamo.exc.TritonUnavailableError) as e:
                self.failed = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                warnings.warn(f"model.lrn.kernel=fused: torch.compile cannot build the LRN kernel here "
                              f"({self.failed}); using model.lrn.kernel=eager (the same formula, slower)", stacklevel=2)
        return EAGER[which](*args)


_COMPILED: _Compiled | None = None


def _kernel(which: str, compiled: bool, *args) -> torch.Tensor:
    global _COMPILED
    if compiled and not torch.compiler.is_compiling():  # inside model.compile=true the outer graph fuses it
        _COMPILED = _COMPILED or _Compiled()
        return _COMPILED(which, *args)
    return EAGER[which](*args)


def _tower_view(x: torch.Tensor, groups: int) -> tuple[torch.Tensor, int, bool]:
    """A view of ``x`` (N, C, H, W) with one axis per tower and the channel axis ``dim`` within it, in the memory
    order x has (no copy): (N, G, C/G, H, W), dim 2, or for channels_last (N, H, W, G, C/G), dim 4."""
    last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    if last:
        return x.permute(0, 2, 3, 1).unflatten(3, (groups, -1)), 4, True
    return x.contiguous().unflatten(1, (groups, -1)), 2, False


def _from_view(v: torch.Tensor, last: bool) -> torch.Tensor:
    return v.flatten(3).permute(0, 3, 1, 2) if last else v.flatten(1, 2)


class _FusedLRN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, groups: int, n: int, alpha_n: float, beta: float, k: float, compiled: bool):
        v, dim, last = _tower_view(x, groups)
        y, scale = _kernel("forward", compiled, v, dim, n, alpha_n, beta, k)
        ctx.save_for_backward(x, scale)
        ctx.args = (groups, n, alpha_n, beta, compiled)
        return _from_view(y, last)

    @staticmethod
    def backward(ctx, g):
        x, scale = ctx.saved_tensors
        groups, n, alpha_n, beta, compiled = ctx.args
        v, dim, last = _tower_view(x, groups)
        gv, _, _ = _tower_view(g.contiguous(memory_format=torch.channels_last if last else torch.contiguous_format),
                               groups)
        return _from_view(_kernel("backward", compiled, gv, v, scale, dim, n, alpha_n, beta), last), *[None] * 6


class LocalResponseNorm(nn.Module):
    """Cross-channel LRN, applied within each of ``groups`` towers."""

    def __init__(self, cfg: LRNConfig, groups: int = 1) -> None:
        super().__init__()
        self.cfg, self.groups = cfg, groups
        self.size, self.beta = cfg.size, cfg.beta
        self.alpha, self.k = effective_alpha_k(cfg)
        self.kernel = LRNKernel(cfg.kernel)

    def denominator(self, x: torch.Tensor) -> torch.Tensor:
        """k + alpha * sum a^2 in the configured convention (before the power beta), for inspection and tests."""
        v, dim, last = _tower_view(x, self.groups)
        return _from_view(_scale(v, dim, self.size, self.alpha / self.size, self.k), last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.within(x, self.groups)

    def within(self, x: torch.Tensor, groups: int) -> torch.Tensor:
        """LRN of ``x`` with the sum kept inside each of ``groups`` equal channel blocks. Under the tower strategy
        a device holds one tower's kernels only: models/towers.py calls this with groups=1."""
        if x.dim() != 4 or x.shape[1] % groups:
            raise ValueError(f"LRN expects (N, C, H, W) with C divisible by {groups} towers, got {tuple(x.shape)}")
        if self.kernel == LRNKernel.reference:
            b, c, h, w = x.shape
            y = F.local_response_norm(x.reshape(b * groups, c // groups, h, w), self.size, self.alpha, self.beta,
                                      self.k)
            return y.reshape(b, c, h, w)
        return _FusedLRN.apply(x, groups, self.size, self.alpha / self.size, self.beta, self.k,
                               self.kernel == LRNKernel.fused)

    def settings(self) -> str:
        c = self.cfg
        return f"LRN n={c.size} k={c.k:g} alpha={c.alpha:g} beta={c.beta:g} ({LRNConvention(c.convention).value})"

    def extra_repr(self) -> str:
        return f"{self.settings()}, groups={self.groups}, kernel={self.kernel.value}"
