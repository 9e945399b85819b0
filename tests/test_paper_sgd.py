"""The paper's update rule (section 5) against torch.optim.SGD and a hand computation."""

from __future__ import annotations

import torch

from alexnet_lit.paper_sgd import PaperSGD


def run(opt_cls, lrs, **kw):
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(5, dtype=torch.float64))
    opt = opt_cls([w], lr=lrs[0], momentum=0.9, weight_decay=5e-4, **kw)
    for lr in lrs:
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad()
        (w**2).sum().backward()  # grad = 2w
        opt.step()
    return w.detach()


def test_same_as_torch_sgd_at_constant_lr():
    torch.testing.assert_close(run(PaperSGD, [0.01] * 20), run(torch.optim.SGD, [0.01] * 20))


def test_matches_the_printed_rule_when_lr_drops():
    lrs = [0.1] * 5 + [0.01] * 5
    torch.manual_seed(0)
    w = torch.randn(5, dtype=torch.float64)
    v = torch.zeros_like(w)
    for lr in lrs:
        v = 0.9 * v - 0.0005 * lr * w - lr * (2 * w)
        w = w + v
    paper = run(PaperSGD, lrs)
    torch.testing.assert_close(paper, w)
    assert not torch.allclose(paper, run(torch.optim.SGD, lrs))
