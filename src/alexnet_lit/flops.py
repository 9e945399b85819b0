"""FLOPs of one training step (forward + backward), counted by torch's FlopCounterMode on the meta device, with
grouped convolutions' weight gradients counted right.

torch 2.14 counts a convolution's weight gradient as if every output kernel saw every input channel: for the
paper's conv2, conv4 and conv5 (two groups: each kernel sees its own tower's half) that is twice the work done,
and the two-tower net's step came out at 4.96 GFLOP an image instead of 4.14 (issue 19). The forward and the input
gradient take the weight's own shape (in channels per group) and are right.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode, conv_backward_flop

aten = torch.ops.aten
_torch_count = conv_backward_flop.__wrapped__  # torch's formula on shapes (the registered one takes tensors)


def grouped_conv_backward_flop(grad_out_shape, x_shape, w_shape, bias, stride, padding, dilation, transposed,
                               output_padding, groups, output_mask, out_shape=None, **kwargs) -> int:
    """torch's count, with the weight gradient's part divided by the number of groups."""
    args = (grad_out_shape, x_shape, w_shape, bias, stride, padding, dilation, transposed, output_padding, groups)
    total = _torch_count(*args, output_mask, out_shape=out_shape, **kwargs)
    if groups == 1 or not output_mask[1]:
        return total
    weight = _torch_count(*args, [False, True, False], out_shape=out_shape, **kwargs)
    return total - weight + weight // groups


def step_flops(forward: Callable[[], torch.Tensor]) -> int:
    """FLOPs of ``forward()`` and the backward of its sum (the loss's own FLOPs are negligible)."""
    counter = FlopCounterMode(display=False, custom_mapping={aten.convolution_backward: grouped_conv_backward_flop})
    with counter:
        forward().sum().backward()
    return counter.get_total_flops()
