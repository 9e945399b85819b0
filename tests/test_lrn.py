"""Each LRN convention against a direct loop over the formula it names (paper section 3.3)."""

from __future__ import annotations

import pytest
import torch

from alexnet_lit.models.lrn import LocalResponseNorm


def direct_lrn(a: torch.Tensor, n: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    """b[i] = a[i] / (k + alpha * sum_{j=max(0,i-n/2)}^{min(N-1,i+n/2)} a[j]^2)^beta, channel by channel."""
    N = a.shape[1]
    b = torch.empty_like(a)
    for i in range(N):
        lo, hi = max(0, i - n // 2), min(N - 1, i + n // 2)
        s = (a[:, lo : hi + 1] ** 2).sum(1)
        b[:, i] = a[:, i] / (k + alpha * s) ** beta
    return b


# convention -> (alpha, k) in the printed formula, for the paper's n=5, alpha=1e-4, k=2
FORMULAS = {"paper": (1e-4, 2.0), "cuda_convnet": (1e-4 / 5, 2.0), "caffe": (1e-4 / 5, 1.0)}


@pytest.mark.parametrize("convention", sorted(FORMULAS))
def test_conventions_match_their_formula(convention):
    torch.manual_seed(0)
    a = torch.randn(2, 11, 4, 4, dtype=torch.float64) * 30  # large activations so alpha matters
    alpha, k = FORMULAS[convention]
    lrn = LocalResponseNorm(5, 1e-4, 0.75, 2.0, convention)
    torch.testing.assert_close(lrn(a), direct_lrn(a, 5, alpha, 0.75, k), rtol=1e-10, atol=1e-12)


def test_conventions_differ():
    a = torch.randn(1, 8, 3, 3, dtype=torch.float64) * 50
    outs = [LocalResponseNorm(convention=c)(a) for c in FORMULAS]
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[1], outs[2])


def test_groups_normalize_within_each_tower():
    a = torch.randn(2, 12, 3, 3, dtype=torch.float64) * 30
    lrn = LocalResponseNorm(convention="paper", groups=2)
    expected = torch.cat([direct_lrn(a[:, :6], 5, 1e-4, 0.75, 2.0), direct_lrn(a[:, 6:], 5, 1e-4, 0.75, 2.0)], 1)
    torch.testing.assert_close(lrn(a), expected)


def test_unknown_convention_names_the_key():
    with pytest.raises(ValueError, match="model.lrn.convention='tf'"):
        LocalResponseNorm(convention="tf")
