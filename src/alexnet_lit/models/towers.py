"""The paper's two towers on two devices (section 3.2, Figure 2): each device holds one tower's half of every layer.

    python train.py +experiment=quickstart trainer=towers_cpu trainer.max_epochs=1   # 2 gloo processes, this CPU
    python train.py +experiment=two_gpu trainer=towers                                 # 2 GPUs (or 2 x N: N pairs)
    alexnet-describe trainer=towers_cpu          # which rank holds each layer, where the towers talk, bytes/image

What each rank holds: rank r of a tower pair holds tower r+1's half of the output units of every weighted layer,
conv1..conv5 and fc6..fc8 (fc8 is split the same way: 500 of the 1,000 classes each). Every parameter of the
one-device ``towers=two`` net is a DTensor sharded on dim 0 over the pair, and dim 0 of each weight is its output
units, so the shard of a grouped conv (conv2, conv4, conv5) is exactly its tower's kernels over its own tower's
input. Consequences: the parameter count over both ranks is the one-device net's (60,965,224 at full size), and
the full state dict (``get_model_state_dict``) is the one-device layout: checkpoints load either way.

Where the towers talk, as the paper's GPUs did ("the GPUs communicate only in certain layers"): an all-gather of
the other tower's activations at the input of conv3 and of fc6, fc7 and fc8; its backward reduce-scatters the
gradient (each tower's layer used both halves). conv2, conv4 and conv5 see only their own tower, LRN normalizes
within a tower. One more exchange the paper's figure does not draw: fc8's two halves of the logits are gathered
so both ranks compute the same softmax, loss and metrics (1,000 floats per image, 2% of the traffic); its
backward moves nothing (each rank keeps the gradient of its own half).

Dropout: both ranks of a pair draw the mask of the whole layer from the same generator state (StepSeed keys it
by the data-parallel replica) and keep their half, so on CPU the masks equal the one-device net's bit for bit
(its ``nn.Dropout`` draws the same Bernoulli tensor). On CUDA ``nn.Dropout`` uses a fused kernel with its own
random stream: there the masks follow the same distribution but are not the one-device net's.

Why DTensor parameters rather than plain per-rank modules: Lightning's ``ModelParallelStrategy`` gathers and
splits DTensors for its single-file checkpoints and resumes by itself; the forward still runs on the local
shards (``to_local``), with explicit collectives, because DTensor keeps convolution weights replicated.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed._functional_collectives as funcol
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import DTensor, Shard, distribute_tensor
from torch.nn import functional as F

from alexnet_lit.models.lrn import LocalResponseNorm

TOWERS = 2


@dataclass
class TowerGroup:
    """This rank's place in its tower pair: the process group of the pair and which tower it holds (0 or 1)."""

    mesh: DeviceMesh
    rank: int
    size: int = TOWERS

    @property
    def group(self):
        return self.mesh.get_group()


def local(p: torch.Tensor) -> torch.Tensor:
    """A parameter's shard on this rank (autograd flows back into the DTensor's gradient)."""
    return p.to_local() if isinstance(p, DTensor) else p


def full(p: torch.Tensor) -> torch.Tensor:
    """The whole parameter (a collective over the pair: every rank of it must call this)."""
    return p.full_tensor() if isinstance(p, DTensor) else p


def gather_channels(x: torch.Tensor, towers: TowerGroup) -> torch.Tensor:
    """Both towers' activations, tower 1's channels first (the one-device order). Backward: each tower gets the sum
    of both ranks' gradients for its half (a reduce-scatter)."""
    both = funcol.all_gather_single_autograd(x.contiguous(), 0, towers.group)
    return torch.cat(both.chunk(towers.size, 0), 1)


def gather_replicated(x: torch.Tensor, towers: TowerGroup) -> torch.Tensor:
    """Both halves, for a computation both ranks repeat (softmax and loss): the backward keeps this rank's own
    half of the gradient and moves nothing (summing both ranks' identical gradients would double it)."""
    parts = list(funcol.all_gather_single(x.detach().contiguous(), 0, towers.group).chunk(towers.size, 0))
    parts[towers.rank] = x
    return torch.cat(parts, 1)


def tower_dropout(x: torch.Tensor, p: float, training: bool, towers: TowerGroup) -> torch.Tensor:
    """This tower's half of the mask ``nn.Dropout`` draws for the whole layer (same generator state on both ranks)."""
    if not training or p == 0:
        return x
    b, n = x.shape
    mask = torch.empty((b, n * towers.size), dtype=x.dtype, device=x.device).bernoulli_(1 - p)
    mask.div_(1 - p)  # the order of nn.Dropout's CPU kernel: the same bits
    return x * mask[:, towers.rank * n:(towers.rank + 1) * n]


def split(net: nn.Module, mesh: DeviceMesh) -> None:
    """Make ``net`` (an AlexNet with towers=two, initialised alike on both ranks) this rank's tower: every parameter
    becomes a DTensor sharded on dim 0 over ``mesh`` (the pair), and the forward runs ``forward_features`` /
    ``forward_head`` below. Idempotent (Lightning calls configure_model for fit and again for test)."""
    if getattr(net, "tower_group", None) is not None:
        return
    for module in list(net.features) + list(net.classifier):
        for name, p in list(module.named_parameters(recurse=False)):
            module.register_parameter(name, nn.Parameter(distribute_tensor(p.detach(), mesh, [Shard(0)]),
                                                         requires_grad=p.requires_grad))
    net.tower_group = TowerGroup(mesh, mesh.get_local_rank())


def _conv(m: nn.Conv2d, x: torch.Tensor, towers: TowerGroup, sharded: bool) -> torch.Tensor:
    if m.groups == 1 and sharded:  # conv3 (Figure 2): sees both towers
        x = gather_channels(x, towers)
    return F.conv2d(x, local(m.weight), local(m.bias), m.stride, m.padding)  # own tower: one group on this rank


def forward_features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """conv1..pool5 of this rank's tower: [B, C/2, h, w], tower r's channels (x: the whole batch, on both ranks)."""
    towers, sharded = net.tower_group, False
    for m in net.features:
        if isinstance(m, nn.Conv2d):
            x, sharded = _conv(m, x, towers, sharded), True
        elif isinstance(m, LocalResponseNorm):
            x = m.within(x, groups=1)  # this device holds this tower's kernels only
        else:
            x = m(x)  # activation, max-pool: per channel
    return x


def forward_head(net: nn.Module, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
    """fc6..fc8 on this tower's pool5 maps; returns the whole logits (or fc7's 4,096 units) on both ranks."""
    towers, c = net.tower_group, net.classifier
    x = gather_channels(x, towers).flatten(1)  # fc6 sees both towers' pool5 maps, in the one-device order
    for i, (fc, act, drop) in enumerate([(c.fc6, c.act6, c.drop6), (c.fc7, c.act7, c.drop7)]):
        if i:
            x = gather_channels(x, towers)  # fc7: both towers' fc6 units
        x = tower_dropout(act(F.linear(x, local(fc.weight), local(fc.bias))), drop.p, drop.training, towers)
    if pre_logits:
        return gather_replicated(x, towers)
    x = gather_channels(x, towers)  # fc8: both towers' fc7 units
    return gather_replicated(F.linear(x, local(c.fc8.weight), local(c.fc8.bias)), towers)


def average_gradients(net: nn.Module, group, size: int) -> None:
    """Data parallelism over tower pairs: each shard's gradient averaged over the replicas (one all-reduce of
    all of them, flattened), as DDP does for whole models; the two towers of a pair hold different shards."""
    grads = [local(p.grad) for p in net.parameters() if p.grad is not None]
    if size == 1 or not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat, group=group)
    flat.div_(size)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def exchanges(net: nn.Module, bytes_per_value: int = 4) -> list[tuple[str, str, int]]:
    """(where, what, bytes each rank sends per image in the forward pass) for every exchange between the towers,
    from the one-device net's shapes (the backward moves the same bytes back, except for the logits)."""
    rows, x = [], torch.zeros(1, net.cfg.in_channels, net.input_size, net.input_size)
    with torch.no_grad():
        for name, m in list(net.features.named_children()) + list(net.classifier.named_children()):
            if isinstance(m, (nn.Conv2d, nn.Linear)) and name != "conv1" and (
                    isinstance(m, nn.Linear) or m.groups == 1):
                rows.append((f"input of {name}", f"all-gather {tuple(x.shape[1:])} / 2 per tower",
                             x[0].numel() // TOWERS * bytes_per_value))
            x = m(x)
    rows.append(("logits", f"all-gather {tuple(x.shape[1:])} / 2 (softmax on both ranks)",
                 x[0].numel() // TOWERS * bytes_per_value))
    return rows
