"""make bench-towers: the two-tower net on one process (grouped convolutions) against two processes (one tower
each, models/towers.py), same global batch, same cores; and the bytes the towers exchange per image.

    python experiments/bench_towers.py                        # the paper's full-size net, batch 32, fp32
    python experiments/bench_towers.py --batch 64 --steps 8 --width 0.5

One training step = forward, cross-entropy, backward, SGD step, on a batch already in memory. The one-process
run gets all the cores (torch threads = cores); each of the two gloo processes gets half. Bytes are counted at
the all-gathers themselves (what each rank contributes, forward and backward) and compared with the table of
``alexnet-describe trainer=towers_cpu``. Prints the CPU first; the last line is towers_vs_one_device=N.NN.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch
from torch.nn import functional as F

from alexnet_lit.machine import cpu_name
from alexnet_lit.models import towers
from alexnet_lit.models.alexnet import AlexNet


def net_config(args) -> dict:
    return dict(width=args.width, fc_units=args.fc_units, input_size=224, num_classes=1000)


def images_per_second(net, batch: int, steps: int, warmup: int = 2) -> float:
    """Steady-state training images/s on one fixed batch (the same on every rank of a pair)."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(batch, 3, 224, 224, generator=g), torch.randint(0, 1000, (batch,), generator=g)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()
    return batch * steps / (time.perf_counter() - start)


class CountBytes(torch.autograd.Function):
    """Identity that counts the bytes of the gradient a rank gets back from the reduce-scatter (its own half:
    in a pair, what each rank sends the other)."""

    count = {"forward": 0, "backward": 0}

    @staticmethod
    def forward(ctx, x):
        return x

    @staticmethod
    def backward(ctx, grad):
        CountBytes.count["backward"] += grad.numel() * grad.element_size()
        return grad


def counted(gather, backward: bool):
    def wrapper(x, group):
        CountBytes.count["forward"] += x.numel() * x.element_size()
        return gather(CountBytes.apply(x) if backward else x, group)
    return wrapper


def worker(args) -> None:
    """One rank of the pair (run under torchrun)."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    dist.init_process_group("gloo")
    torch.set_num_threads(max(1, args.threads // 2))
    torch.manual_seed(0)
    net = AlexNet(**net_config(args))
    towers.split(net, init_device_mesh("cpu", (2,)))
    towers.gather_channels = counted(towers.gather_channels, backward=True)
    towers.gather_replicated = counted(towers.gather_replicated, backward=False)
    rate = images_per_second(net, args.batch, args.steps)
    sent = {k: v / (args.batch * (args.steps + 2)) for k, v in CountBytes.count.items()}
    if dist.get_rank() == 0:
        with open(args.worker, "w") as f:
            json.dump({"images_per_s": rate, "bytes_per_image": sent}, f)
    dist.destroy_process_group()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--fc-units", type=int, default=4096)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)

    print(f"cpu={cpu_name()} cores={os.cpu_count()} torch={torch.__version__}", flush=True)
    print(f"net: towers=two width={args.width} fc_units={args.fc_units}, 224 px, global batch {args.batch}, fp32, "
          f"{args.steps} timed steps", flush=True)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    one = images_per_second(AlexNet(**net_config(args)), args.batch, args.steps)
    print(f"one process, grouped convs ({args.threads} threads): {one:,.1f} img/s", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "towers.json")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__,
               f"--worker={out}", f"--batch={args.batch}", f"--steps={args.steps}", f"--width={args.width}",
               f"--fc-units={args.fc_units}", f"--threads={args.threads}"]
        subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": str(max(1, args.threads // 2))},
                       stderr=subprocess.DEVNULL)
        two = json.load(open(out))

    table = towers.exchanges(AlexNet(**net_config(args)), bytes_per_value=4)
    expected = {"forward": sum(b for _, _, b in table),
                "backward": sum(b for where, _, b in table if where != "logits")}  # the logits send nothing back
    sent = two["bytes_per_image"]
    print(f"two processes, one tower each ({max(1, args.threads // 2)} threads each): {two['images_per_s']:,.1f} img/s",
          flush=True)
    print(f"bytes per image each rank hands to the all-gathers: forward {sent['forward']:,.0f} "
          f"(describe: {expected['forward']:,}), backward {sent['backward']:,.0f} (reduce-scatter, "
          f"describe: {expected['backward']:,}); fp32 here, bf16 halves them")
    print(f"towers_vs_one_device={two['images_per_s'] / one:.2f}")


if __name__ == "__main__":
    main()
