"""make bench-train: our training step against a plain PyTorch loop, and the fast paths, on the paper's network.

    python experiments/bench_train.py                   # full size, towers=two, batch 64, 8 timed steps each
    python experiments/bench_train.py --batch 128 --steps 8 --skip-compile

Every comparison trains the same network (the paper's, full size) on the same batch already in memory, timing
steady-state steps after warm-up (forward, cross-entropy, backward, SGD step); images/s is the batch over the
median step time (a shared machine's stalls move the mean, not the median):
1. precision: the plain loop in fp32 against bf16 autocast + channels_last -> bf16_vs_fp32. trainer=cpu picks
   bf16 where the CPU has bf16 instructions (machine.py); the rest runs at the precision trainer=cpu picks here.
2. towers: grouped convolutions (the default) against one convolution per tower (model.tower_conv=split).
3. torch.compile (model.compile=true) against eager: the first step's time is reported apart (compilation).
4. ours: AlexNetModule under our Trainer config (make_trainer) with the default callbacks (progress, throughput,
   stuck-at-chance, LR monitor, data wait, kernels; checkpoints off), the CSV logger, StepSeed and StopSafely,
   against the plain loop at the same precision -> lightning_vs_plain (the last line; target >= 0.97).
Each measurement runs in a fresh process (measured: run after the compiled loop in the same process, the
Lightning loop lost 30%, to the compiler's leftover worker threads). Prints the CPU first: the ratios depend on
it (AMX or not).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from lightning import pytorch as pl
from torch.nn import functional as F

from alexnet_lit.machine import cpu_bf16, cpu_name, cpu_precision
from alexnet_lit.models.alexnet import AlexNet
from alexnet_lit.quiet import quiet

ROOT = Path(__file__).resolve().parents[1]


def batch(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(size, 3, 224, 224, generator=g), torch.randint(0, 1000, (size,), generator=g)


def plain_loop(args, bf16: bool, channels_last: bool, **net) -> tuple[float, float]:
    """(images/s in steady state, seconds of the first step) of a hand-written loop."""
    compile_ = net.pop("compile", False)
    torch.manual_seed(0)
    model = AlexNet(**net, width=args.width, fc_units=args.fc_units)
    if compile_:
        torch._inductor.config.force_disable_caches = True  # the first step's time is compilation, not a cache hit
        model.compile()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    x, y = batch(args.batch)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
    times = []
    for _ in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = F.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return args.batch / statistics.median(times[args.warmup:]), times[0]


class StepClock(pl.Callback):
    """Each step's wall time, from one step's start to the next's (callbacks, logging and the fetch included);
    the last step ends at its on_train_batch_end (after every other callback's: this one runs last)."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.starts.append(time.perf_counter())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.end = time.perf_counter()

    def step_times(self) -> list[float]:
        return [b - a for a, b in zip(self.starts, [*self.starts[1:], self.end])]


def ours(args, precision: str, channels_last: bool) -> float:
    """Images/s of AlexNetModule under our Trainer config and default callbacks (checkpoints off)."""
    from hydra import compose, initialize_config_dir

    from alexnet_lit.config import plain
    from alexnet_lit.module import AlexNetModule
    from alexnet_lit.trainer import extra_callbacks, instantiate_all, make_trainer

    steps = args.warmup + args.steps
    with tempfile.TemporaryDirectory() as tmp, initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[
            "trainer=cpu", f"trainer.precision={precision}", f"model.channels_last={channels_last}",
            "logger=csv_only", f"paths.output_dir={tmp}", "callbacks.checkpoint=null",
            "callbacks.last_checkpoint=null", "checkpoint_every_n_steps=null", f"trainer.max_steps={steps}",
            "trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0", "trainer.enable_model_summary=false",
            f"trainer.log_every_n_steps={args.steps}",  # one logging step (its reads) inside the timed window
            "callbacks.progress.force_lines=true", f"model.width={args.width}", f"model.fc_units={args.fc_units}"])
        torch.manual_seed(0)
        model = AlexNetModule(**plain(cfg.model))
        sgd = model.configure_optimizers()["optimizer"]  # without the plateau schedule: it needs a validation
        model.configure_optimizers = lambda: sgd
        clock = StepClock()
        callbacks = instantiate_all(cfg.callbacks) + extra_callbacks(cfg, 0, os.path.join(tmp, "checkpoints"))
        trainer = make_trainer(cfg, [*callbacks, clock], tmp)
        trainer.loggers = instantiate_all(cfg.logger)
        data = [batch(args.batch)] * steps  # the same tensors every step, as the plain loop
        loader = torch.utils.data.DataLoader(data, batch_size=None)
        trainer.fit(model, train_dataloaders=loader)
        print(flush=True)
    return args.batch / statistics.median(clock.step_times()[args.warmup:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--skip-compile", action="store_true")
    p.add_argument("--repeats", type=int, default=3, help="pairs of (plain loop, ours) for lightning_vs_plain")
    p.add_argument("--width", type=float, default=1.0, help="a narrower net, for a quick look (1: the paper's)")
    p.add_argument("--fc-units", type=int, default=4096)
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        quiet()
        return one(args, cpu_precision())

    quiet()
    precision = cpu_precision()
    bf16 = precision == "bf16-mixed"
    print(f"cpu={cpu_name()} bf16={cpu_bf16()} cores={os.cpu_count()} threads={torch.get_num_threads()} "
          f"torch={torch.__version__}", flush=True)
    print(f"paper's net (towers=two, 224 px), batch {args.batch}, {args.warmup} warm-up + {args.steps} timed steps; "
          f"trainer=cpu picks precision={precision} on this CPU", flush=True)

    def show(label: str, measurement: str) -> tuple[float, float]:
        cmd = [sys.executable, __file__, f"--one={measurement}", *sys.argv[1:]]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()
        rate, first = (float(v) for v in out[-1].split())
        print(f"{label:<62} {rate:8.1f} img/s", flush=True)
        return rate, first

    fp32, _ = show("plain loop, fp32", "fp32")
    bf, _ = show("plain loop, bf16 autocast + channels_last", "bf16")
    print(f"bf16_vs_fp32={bf / fp32:.2f}", flush=True)
    base = bf if bf16 else fp32
    split, _ = show(f"plain loop, {precision}, model.tower_conv=split", "split")
    print(f"split_vs_grouped={split / base:.2f}", flush=True)
    if not args.skip_compile:
        rate, first = show(f"plain loop, {precision}, model.compile=true", "compile")
        print(f"compile_vs_eager={rate / base:.2f} compile_first_step_s={first:.1f} (eager first step: steady "
              f"state + allocation)", flush=True)
    ratios = []  # ours and the plain loop in alternation: a shared machine's slow minutes hit both alike
    for i in range(args.repeats):
        plain_rate, _ = show(f"plain loop, {precision} (pair {i + 1})", "bf16" if bf16 else "fp32")
        mine, _ = show(f"ours: AlexNetModule + Trainer + default callbacks, {precision} (pair {i + 1})", "ours")
        ratios.append(mine / plain_rate)
    print(f"lightning_vs_plain per pair: {', '.join(f'{r:.2f}' for r in ratios)}", flush=True)
    print(f"lightning_vs_plain={statistics.median(ratios):.2f}", flush=True)


def one(args, precision: str) -> None:
    """One measurement, in this (fresh) process; prints 'images/s first-step-seconds'."""
    bf16 = precision == "bf16-mixed"
    runs = {"fp32": lambda: plain_loop(args, False, False), "bf16": lambda: plain_loop(args, True, True),
            "split": lambda: plain_loop(args, bf16, bf16, tower_conv="split"),
            "compile": lambda: plain_loop(args, bf16, bf16, compile=True),
            "ours": lambda: (ours(args, precision, bf16), 0.0)}
    rate, first = runs[args.one]()
    print(f"{rate} {first}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
