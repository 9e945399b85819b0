"""Each LRN convention against a direct loop over the formula it names (paper section 3.3)."""

from __future__ import annotations

import pytest
import torch

from alexnet_lit.config import LRNConfig
from alexnet_lit.models.lrn import LocalResponseNorm


def window_sum_sq(a: torch.Tensor, n: int) -> torch.Tensor:
    """sum_{j=max(0,i-n/2)}^{min(N-1,i+n/2)} a[j]^2 for every channel i, by a loop."""
    N = a.shape[1]
    out = torch.empty_like(a)
    for i in range(N):
        lo, hi = max(0, i - n // 2), min(N - 1, i + n // 2)
        out[:, i] = (a[:, lo : hi + 1] ** 2).sum(1)
    return out


def direct_lrn(a: torch.Tensor, n: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    """b[i] = a[i] / (k + alpha * sum_{j=max(0,i-n/2)}^{min(N-1,i+n/2)} a[j]^2)^beta, channel by channel."""
    return a / (k + alpha * window_sum_sq(a, n)) ** beta


# convention -> (alpha, k) in the printed formula, for the paper's n=5, alpha=1e-4, k=2
FORMULAS = {"paper": (1e-4, 2.0), "cuda_convnet": (1e-4 / 5, 2.0), "caffe": (1e-4 / 5, 1.0)}


@pytest.mark.parametrize("convention", sorted(FORMULAS))
def test_conventions_match_their_formula(convention):
    torch.manual_seed(0)
    a = torch.randn(2, 11, 4, 4, dtype=torch.float64) * 30  # large activations so alpha matters
    alpha, k = FORMULAS[convention]
    lrn = LocalResponseNorm(LRNConfig(convention=convention))
    torch.testing.assert_close(lrn(a), direct_lrn(a, 5, alpha, 0.75, k), rtol=1e-10, atol=1e-12)


def test_conventions_differ():
    a = torch.randn(1, 8, 3, 3, dtype=torch.float64) * 50
    outs = [LocalResponseNorm(LRNConfig(convention=c))(a) for c in FORMULAS]
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[1], outs[2])


def test_groups_normalize_within_each_tower():
    a = torch.randn(2, 12, 3, 3, dtype=torch.float64) * 30
    lrn = LocalResponseNorm(LRNConfig(), groups=2)
    expected = torch.cat([direct_lrn(a[:, :6], 5, 1e-4, 0.75, 2.0), direct_lrn(a[:, 6:], 5, 1e-4, 0.75, 2.0)], 1)
    torch.testing.assert_close(lrn(a), expected)


def test_defaults_are_the_papers_constants():
    c = LRNConfig()
    assert (c.enabled, c.size, c.alpha, c.beta, c.k, c.convention.value) == (True, 5, 1e-4, 0.75, 2.0, "paper")


@pytest.mark.parametrize("convention", sorted(FORMULAS))
@pytest.mark.parametrize("groups", [1, 2])
def test_denominator_is_the_formulas(convention, groups):
    """b = a / denominator^beta, the denominator being k + alpha * sum a^2 of the convention."""
    torch.manual_seed(0)
    a = torch.randn(2, 12, 3, 3, dtype=torch.float64) * 30
    lrn = LocalResponseNorm(LRNConfig(convention=convention), groups=groups)
    torch.testing.assert_close(a / lrn.denominator(a) ** 0.75, lrn(a), rtol=1e-10, atol=1e-12)
    alpha, k = FORMULAS[convention]
    direct = torch.cat([k + alpha * window_sum_sq(t, 5) for t in a.chunk(groups, 1)], 1)
    torch.testing.assert_close(lrn.denominator(a), direct, rtol=1e-10, atol=1e-12)


def test_unknown_convention_names_the_key():
    from alexnet_lit.config import ConfigError
    from alexnet_lit.models import AlexNet

    with pytest.raises(ConfigError, match=r"model.lrn.convention: Invalid value 'tf'"):
        AlexNet(lrn={"convention": "tf"}, width=0.125, fc_units=8, input_size=64)
