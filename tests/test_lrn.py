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


# ---- the kernels (model.lrn.kernel): fused (compiled closed form), eager (uncompiled), reference (torch's) --------

def lrn_of(kernel: str, groups: int = 1, **cfg) -> LocalResponseNorm:
    return LocalResponseNorm(LRNConfig(kernel=kernel, **cfg), groups=groups)


@pytest.mark.parametrize("kernel", ["fused", "eager"])
@pytest.mark.parametrize(("size", "beta", "groups", "channels_last"),
                         [(5, 0.75, 2, False), (5, 0.75, 1, True), (4, 0.6, 2, True), (9, 0.5, 1, False)])
def test_closed_form_gradient_is_autograds(kernel, size, beta, groups, channels_last):
    """gradcheck in float64: the hand-written backward (windows, even n, towers, both memory formats, every branch of
    s^-beta) against finite differences of the forward, and the forward against the direct formula."""
    torch.manual_seed(0)
    a = torch.randn(2, 12, 3, 3, dtype=torch.float64) * 30
    if channels_last:
        a = a.contiguous(memory_format=torch.channels_last)
    lrn = lrn_of(kernel, groups, size=size, beta=beta, convention="cuda_convnet")
    a.requires_grad_()
    assert torch.autograd.gradcheck(lrn, (a,))
    expected = torch.cat([direct_lrn(t, size, 1e-4 / size, beta, 2.0) for t in a.detach().chunk(groups, 1)], 1)
    if size % 2 == 0:  # torch's window for even n, [i - n/2, i + n/2 - 1]: the reference kernel is the check
        expected = lrn_of("reference", groups, size=size, beta=beta, convention="cuda_convnet")(a.detach())
    torch.testing.assert_close(lrn(a).detach(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kernel", ["fused", "eager"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kernels_equal_the_reference_within_rounding(kernel, dtype):
    """At the paper's constants and scale (conv1 outputs of raw pixels: alpha * sum a^2 of order 1), channels_last
    as the bf16 path runs: outputs and input gradients against F.local_response_norm in fp32, within fp32 rounding
    (fp32) or bf16's (bf16: one rounding of the output, the window sums kept in fp32), in the input's dtype and
    memory format."""
    torch.manual_seed(0)
    a32 = (torch.randn(4, 96, 13, 13) * 100).contiguous(memory_format=torch.channels_last)
    g32 = torch.randn(4, 96, 13, 13)
    ref = lrn_of("reference", 2)
    a_ref = a32.clone().requires_grad_()
    y_ref = ref(a_ref)
    y_ref.backward(g32)
    a = a32.to(dtype).requires_grad_()
    y = lrn_of(kernel, 2)(a)
    y.backward(g32.to(dtype))
    assert y.dtype == dtype and a.grad.dtype == dtype
    assert y.is_contiguous(memory_format=torch.channels_last)
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 2e-2}
    torch.testing.assert_close(y.float(), y_ref.detach(), **tol)
    # bf16: the input itself is rounded (a relative 2^-9), so the gradient carries that error times its slope
    torch.testing.assert_close(a.grad.float(), a_ref.grad, **tol)


def test_fused_under_bf16_autocast_stays_in_bf16():
    """Under autocast the conv output is bf16: the fused kernel returns bf16 (torch's LRN ran in fp32 there)."""
    x = torch.randn(2, 3, 16, 16)
    conv = torch.nn.Conv2d(3, 8, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = lrn_of("fused")(conv(x))
    assert y.dtype == torch.bfloat16


def test_fused_falls_back_to_eager_with_a_warning_where_the_compiler_fails(monkeypatch):
    from alexnet_lit.models import lrn as lrn_module

    compiled = lrn_module._Compiled()

    def broken(*args):
        raise torch._inductor.exc.InductorError(RuntimeError("no C++ compiler"), "")

    monkeypatch.setattr(compiled, "forward", broken)
    monkeypatch.setattr(lrn_module, "_COMPILED", compiled)
    a = torch.randn(2, 8, 3, 3, dtype=torch.float64) * 30
    with pytest.warns(UserWarning, match=r"model.lrn.kernel=fused: torch.compile cannot build .*kernel=eager"):
        y = lrn_of("fused")(a)
    torch.testing.assert_close(y, lrn_of("reference")(a))
    assert compiled.failed  # the next calls go straight to the eager kernel


def test_fused_inside_a_compiled_model():
    """model.compile=true: the outer graph traces the autograd Function (no nested compile), same numbers."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), lrn_of("fused"))
    x = (torch.randn(2, 3, 8, 8) * 50).requires_grad_()
    y = torch.compile(net)(x)
    y.sum().backward()
    x_ref = x.detach().clone().requires_grad_()
    y_ref = torch.nn.Sequential(net[0], lrn_of("reference"))(x_ref)
    y_ref.sum().backward()
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(x.grad, x_ref.grad)
