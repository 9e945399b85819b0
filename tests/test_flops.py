"""FLOPs of a training step (flops.py): grouped convolutions counted by hand, and the paper's net's total."""

from __future__ import annotations

import torch
from torch import nn

from alexnet_lit.flops import step_flops


def conv_flops(n: int, c_in: int, c_out: int, k: int, out: int, groups: int = 1) -> int:
    """2 x multiply-adds of one forward: every output value sums c_in/groups x k x k products."""
    return 2 * n * c_out * out * out * (c_in // groups) * k * k


def test_grouped_convolutions_count_each_kernel_over_its_own_group():
    """conv1 (no input gradient: its input is the data) = forward + weight gradient; conv2, two groups = forward +
    input gradient + weight gradient, each the forward's count (torch's own count doubles conv2's weight
    gradient)."""
    with torch.device("meta"):
        net = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.Conv2d(8, 16, 3, groups=2, bias=False))
        x = torch.empty(4, 3, 12, 12)
    one, two = conv_flops(4, 3, 8, 3, 10), conv_flops(4, 8, 16, 3, 8, groups=2)
    assert step_flops(lambda: net(x)) == 2 * one + 3 * two


def test_the_papers_net_step_is_4_14_gflop_an_image():
    from alexnet_lit.models.alexnet import AlexNet

    with torch.device("meta"):
        net = AlexNet()
        x = torch.empty(1, 3, 224, 224)
    assert round(step_flops(lambda: net(x)) / 1e9, 2) == 4.14
