"""make bench-train: our training step against a plain PyTorch loop, and the fast paths, on the paper's network.

    python experiments/bench_train.py                   # full size, towers=two, batch 64, 8 timed steps each
    python experiments/bench_train.py --batch 128 --steps 8 --skip-compile
    python experiments/bench_train.py --only lrn        # lrn_vs_no_lrn only (also: ckpt, lightning)

On a machine with CUDA everything runs on the GPU (bf16 autocast + channels_last as trainer=gpu); else on the CPU.

Every comparison trains the same network (the paper's, full size) on the same batch already in memory, timing
steady-state steps after warm-up (forward, cross-entropy, backward, SGD step); images/s is the batch over the
median step time (a shared machine's stalls move the mean, not the median):
1. precision: the plain loop in fp32 against bf16 autocast + channels_last -> bf16_vs_fp32. trainer=cpu picks
   bf16 where the CPU has bf16 instructions (machine.py); the rest runs at the precision trainer=cpu picks here.
2. towers: grouped convolutions (the default) against one convolution per tower (model.tower_conv=split).
3. torch.compile (model.compile=true) against eager: the first step's time is reported apart (compilation).
4. LRN (models/lrn.py): the net with its two LRN layers (model.lrn.kernel=fused) against the same net without
   them, in fp32 and in bf16 + channels_last, alternating pairs -> lrn_vs_no_lrn (target >= 0.8); and torch's
   LRN (kernel=reference), the kernel before issue 19, for comparison.
5. checkpoint: the full training state (weights + momentum, ~465 MiB) saved as a step checkpoint is: the stall
   on the training thread (state gathered, tensors copied) against the write finishing on the writer thread
   (checkpoint.QueuedCheckpointIO), and the synchronous write (checkpoint_async=false: the training thread's wait
   before) -> checkpoint_stall_vs_write = stall / synchronous write (target < 0.10).
6. ours: AlexNetModule under our Trainer config (make_trainer) with the default callbacks (progress, throughput,
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


DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def batch(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return (torch.randn(size, 3, 224, 224, generator=g).to(DEVICE),
            torch.randint(0, 1000, (size,), generator=g).to(DEVICE))


def sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def plain_loop(args, bf16: bool, channels_last: bool, **net) -> tuple[float, float]:
    """(images/s in steady state, seconds of the first step) of a hand-written loop."""
    compile_ = net.pop("compile", False)
    torch.manual_seed(0)
    model = AlexNet(**net, width=args.width, fc_units=args.fc_units).to(DEVICE)
    if compile_:
        torch._inductor.config.force_disable_caches = True  # the first step's time is compilation, not a cache hit
        model.compile()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    x, y = batch(args.batch)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    autocast = torch.autocast(DEVICE.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    times = []
    for _ in range(args.warmup + args.steps):
        sync()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = F.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()
        sync()
        times.append(time.perf_counter() - t0)
    return args.batch / statistics.median(times[args.warmup:]), times[0]


class StepClock(pl.Callback):
    """Each step's wall time, from one step's start to the next's (callbacks, logging and the fetch included);
    the last step ends at its on_train_batch_end (after every other callback's: this one runs last)."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        sync()  # on CUDA the previous step's kernels done (the plain loop syncs per step alike)
        self.starts.append(time.perf_counter())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        sync()
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
            f"trainer={'gpu' if DEVICE.type == 'cuda' else 'cpu'}", f"trainer.precision={precision}",
            f"model.channels_last={channels_last}", "logger=csv_only", f"paths.output_dir={tmp}",
            "callbacks.checkpoint=null", "callbacks.last_checkpoint=null", "checkpoint_every_n_steps=null",
            "checkpoint_every_minutes=null", f"trainer.max_steps={steps}",
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


def checkpoint_times(args, repeats: int = 3) -> list[tuple[float, float, float]]:
    """(stall on the training thread, time until the write finished, synchronous write) per repeat, seconds:
    the full training state of AlexNetModule after two real steps under make_trainer."""
    from hydra import compose, initialize_config_dir

    from alexnet_lit.checkpoint import AtomicCheckpointIO
    from alexnet_lit.config import plain
    from alexnet_lit.module import AlexNetModule
    from alexnet_lit.trainer import make_trainer

    out = []
    with tempfile.TemporaryDirectory() as tmp, initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[
            f"trainer={'gpu' if DEVICE.type == 'cuda' else 'cpu'}", "logger=csv_only", f"paths.output_dir={tmp}",
            "trainer.max_steps=2", "trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0",
            "trainer.enable_model_summary=false", "trainer.enable_progress_bar=false",
            f"model.width={args.width}", f"model.fc_units={args.fc_units}"])
        model = AlexNetModule(**plain(cfg.model))
        sgd = model.configure_optimizers()["optimizer"]
        model.configure_optimizers = lambda: sgd
        trainer = make_trainer(cfg, [], tmp)
        loader = torch.utils.data.DataLoader([tuple(t.cpu() for t in batch(8))] * 2, batch_size=None)
        trainer.fit(model, train_dataloaders=loader)
        io = trainer.strategy.checkpoint_io
        for i in range(repeats):
            path = os.path.join(tmp, f"step{i}.ckpt")
            t0 = time.perf_counter()
            trainer.save_checkpoint(path)  # what ModelCheckpoint calls on the training thread
            t1 = time.perf_counter()
            io.teardown()  # waits for the writer thread
            t2 = time.perf_counter()
            state = trainer._checkpoint_connector.dump_checkpoint()
            t3 = time.perf_counter()
            AtomicCheckpointIO().save_checkpoint(state, path)  # checkpoint_async=false
            out.append((t1 - t0, t2 - t0, time.perf_counter() - t3))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--skip-compile", action="store_true")
    p.add_argument("--repeats", type=int, default=3, help="alternating pairs for lrn_vs_no_lrn, lightning_vs_plain")
    p.add_argument("--width", type=float, default=1.0, help="a narrower net, for a quick look (1: the paper's)")
    p.add_argument("--fc-units", type=int, default=4096)
    p.add_argument("--only", choices=["precision", "towers", "compile", "lrn", "ckpt", "lightning"], action="append",
                   help="run only these parts (repeatable); default: all")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    precision = "bf16-mixed" if DEVICE.type == "cuda" else cpu_precision()
    if args.one:
        quiet()
        return one(args, precision)

    quiet()
    bf16 = precision == "bf16-mixed"
    parts = set(args.only or ["precision", "towers", "compile", "lrn", "ckpt", "lightning"])
    if args.skip_compile:
        parts.discard("compile")
    where = torch.cuda.get_device_name() if DEVICE.type == "cuda" else "CPU"
    print(f"device={where} cpu={cpu_name()} bf16={cpu_bf16()} cores={os.cpu_count()} "
          f"threads={torch.get_num_threads()} torch={torch.__version__}", flush=True)
    print(f"paper's net (towers=two, 224 px), batch {args.batch}, {args.warmup} warm-up + {args.steps} timed steps; "
          f"precision={precision} (what trainer={'gpu' if DEVICE.type == 'cuda' else 'cpu'} picks here)", flush=True)

    def show(label: str, measurement: str) -> tuple[float, float]:
        cmd = [sys.executable, __file__, f"--one={measurement}", *sys.argv[1:]]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()
        rate, first = (float(v) for v in out[-1].split())
        print(f"{label:<62} {rate:8.1f} img/s", flush=True)
        return rate, first

    def pairs(name: str, a: tuple[str, str], b: tuple[str, str]) -> None:
        """b against a in alternation: a shared machine's slow minutes hit both alike."""
        ratios = []
        for i in range(args.repeats):
            ra, _ = show(f"{a[0]} (pair {i + 1})", a[1])
            rb, _ = show(f"{b[0]} (pair {i + 1})", b[1])
            ratios.append(rb / ra)
        print(f"{name} per pair: {', '.join(f'{r:.2f}' for r in ratios)}", flush=True)
        print(f"{name}={statistics.median(ratios):.2f}", flush=True)

    base = 0.0
    if "precision" in parts or "towers" in parts or "compile" in parts:
        fp32, _ = show("plain loop, fp32", "fp32")
        bf, _ = show("plain loop, bf16 autocast + channels_last", "bf16")
        print(f"bf16_vs_fp32={bf / fp32:.2f}", flush=True)
        base = bf if bf16 else fp32
    if "towers" in parts:
        split, _ = show(f"plain loop, {precision}, model.tower_conv=split", "split")
        print(f"split_vs_grouped={split / base:.2f}", flush=True)
    if "compile" in parts:
        rate, first = show(f"plain loop, {precision}, model.compile=true", "compile")
        print(f"compile_vs_eager={rate / base:.2f} compile_first_step_s={first:.1f} (eager first step: steady "
              f"state + allocation)", flush=True)
    if "lrn" in parts:
        show("plain loop, fp32, model.lrn.kernel=reference (torch's LRN)", "fp32-lrn-reference")
        pairs("lrn_vs_no_lrn fp32", ("plain loop, fp32, model.lrn.enabled=false", "fp32-no-lrn"),
              ("plain loop, fp32, model.lrn.kernel=fused", "fp32"))
        show("plain loop, bf16 + channels_last, model.lrn.kernel=reference", "bf16-lrn-reference")
        pairs("lrn_vs_no_lrn bf16", ("plain loop, bf16 + channels_last, model.lrn.enabled=false", "bf16-no-lrn"),
              ("plain loop, bf16 + channels_last, model.lrn.kernel=fused", "bf16"))
    if "ckpt" in parts:
        cmd = [sys.executable, __file__, "--one=ckpt", *sys.argv[1:]]
        rows = [tuple(float(v) for v in line.split()) for line in
                subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-3:]]
        for stall, done, blocking in rows:
            print(f"checkpoint: stall on the training thread {stall:.3f} s, written after {done:.3f} s "
                  f"(synchronous write: {blocking:.3f} s)", flush=True)
        # against the synchronous write: what the training thread waited per checkpoint before (checkpoint_async)
        print(f"checkpoint_stall_vs_write={statistics.median(r[0] / r[2] for r in rows):.3f}", flush=True)
    if "lightning" in parts:
        plain_one = "bf16" if bf16 else "fp32"
        pairs("lightning_vs_plain", (f"plain loop, {precision}", plain_one),
              (f"ours: AlexNetModule + Trainer + default callbacks, {precision}", "ours"))


def one(args, precision: str) -> None:
    """One measurement, in this (fresh) process; prints 'images/s first-step-seconds'."""
    bf16 = precision == "bf16-mixed"
    if args.one == "ckpt":
        for row in checkpoint_times(args):
            print(*row, flush=True)
        return
    runs = {"fp32": lambda: plain_loop(args, False, False), "bf16": lambda: plain_loop(args, True, True),
            "fp32-no-lrn": lambda: plain_loop(args, False, False, lrn={"enabled": False}),
            "bf16-no-lrn": lambda: plain_loop(args, True, True, lrn={"enabled": False}),
            "fp32-lrn-reference": lambda: plain_loop(args, False, False, lrn={"kernel": "reference"}),
            "bf16-lrn-reference": lambda: plain_loop(args, True, True, lrn={"kernel": "reference"}),
            "split": lambda: plain_loop(args, bf16, bf16, tower_conv="split"),
            "compile": lambda: plain_loop(args, bf16, bf16, compile=True),
            "ours": lambda: (ours(args, precision, bf16), 0.0)}
    rate, first = runs[args.one]()
    print(f"{rate} {first}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
