"""make check-gpu: what only a GPU can show, in one command of at most 8 minutes on a machine with one GPU.

    python experiments/check_gpu.py            # on a machine with CUDA; elsewhere: one error line, exit 2
    python experiments/check_gpu.py --skip-speed

Checks, each a row of the summary table:
1. quickstart: ``train.py +experiment=quickstart trainer=gpu`` end to end (2 epochs), exit 0 and a val error.
2. ten_crop: the 10 views cut on the device equal those cut on the host (data/ten_crop.py), and give the same
   errors through the same network.
3. compile: model.compile=true against eager, the same losses over a few steps (bf16 tolerance).
4. syncs: ``torch.cuda.set_sync_debug_mode("error")`` on every non-logging training step of a real run: any op
   that waits for the device raises (tests/test_syncs.py counts the same on the CPU).
5. lrn: the fused LRN kernel (Triton through torch.compile) against torch's, outputs and gradients, bf16.
6. jpeg: a JPEG store's batch decoded on the device in one call (nvJPEG, data.augment_on=device) against the
   workers' libjpeg-turbo decode of the same bytes: the largest pixel difference, and the batch rate.
7. speed: the paper's net at batch 128, bf16 + channels_last: the plain loop against ours, and with LRN against
   without (experiments/bench_train.py on the GPU).
Every check takes ``device``: tests/test_check_gpu.py runs the same functions on the CPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))


def check_quickstart(device: str, epochs: int = 2) -> str:
    trainer = "gpu" if device == "cuda" else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, str(ROOT / "train.py"), "+experiment=quickstart", f"trainer={trainer}",
                               f"trainer.max_epochs={epochs}", "logger=csv_only", f"paths.log_dir={tmp}",
                               "test=false"], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise AssertionError(f"train.py exited {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
    best = [line for line in proc.stderr.splitlines() + proc.stdout.splitlines() if "best val/top1_err" in line]
    return best[-1].split("best ")[1] if best else "finished"


def check_ten_crop(device: str) -> str:
    from alexnet_lit.data.ten_crop import ten_crops
    from alexnet_lit.models.alexnet import AlexNet

    g = torch.Generator().manual_seed(0)
    rows = torch.randint(0, 256, (4, 72, 72, 3), dtype=torch.uint8, generator=g)
    host = ten_crops(rows, 64).flatten(0, 1)
    there = ten_crops(rows.to(device), 64).flatten(0, 1)
    assert torch.equal(host, there.cpu()), "the 10 views differ between the host and the device"
    torch.manual_seed(0)
    net = AlexNet(width=0.25, fc_units=64, num_classes=10, input_size=64).eval()
    with torch.no_grad():
        a = net(host.movedim(-1, -3).float()).argmax(1)
        b = net.to(device)(there.movedim(-1, -3).float()).argmax(1).cpu()
    assert torch.equal(a, b), "the 10 views give different predictions on the host and the device"
    return f"{host.shape[0]} views equal, same predictions"


def check_compile(device: str, steps: int = 3) -> str:
    from alexnet_lit.models.alexnet import AlexNet

    losses = []
    for compiled in (False, True):
        torch.manual_seed(0)
        net = AlexNet(width=0.25, fc_units=64, num_classes=10, input_size=64, dropout=0).to(device)
        if compiled:
            net.compile()
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        g = torch.Generator().manual_seed(1)
        x, y = torch.randn(8, 3, 64, 64, generator=g).to(device), torch.randint(0, 10, (8,), generator=g).to(device)
        run = []
        for _ in range(steps):
            opt.zero_grad()
            with torch.autocast(device, dtype=torch.bfloat16):
                loss = torch.nn.functional.cross_entropy(net(x).float(), y)
            loss.backward()
            opt.step()
            run.append(float(loss))
        losses.append(run)
    worst = max(abs(a - b) / abs(a) for a, b in zip(*losses))
    assert worst < 2e-2, f"compiled losses {losses[1]} differ from eager {losses[0]}"
    return f"losses within {worst:.1e} (relative) over {steps} steps"


def check_syncs(device: str) -> str:
    """A real run (the tiny debug net on generated data) with CUDA's sync debug mode raising on every step that is
    not a logging step; on the CPU the same run with the mode's stand-in switched on and off."""
    from hydra import compose, initialize_config_dir
    from lightning import pytorch as pl

    from alexnet_lit.callbacks.cadence import logging_step
    from alexnet_lit.cli import train as train_cli

    checked = []

    class SyncsAreErrors(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            quiet = not logging_step(trainer) and batch_idx + 1 < trainer.num_training_batches
            if device == "cuda":
                torch.cuda.set_sync_debug_mode("error" if quiet else "default")
            checked.append(quiet)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if device == "cuda":
                torch.cuda.set_sync_debug_mode("default")

    original = train_cli.extra_callbacks
    train_cli.extra_callbacks = lambda *a: [*original(*a), SyncsAreErrors()]
    try:
        with tempfile.TemporaryDirectory() as tmp, initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("train", overrides=[
                "+debug=tiny", f"trainer={'gpu' if device == 'cuda' else 'cpu'}", "trainer.devices=1",
                "trainer.log_every_n_steps=5", "test=false", "checkpoint_every_n_steps=null",
                "data.generated.train_per_class=40", f"paths.output_dir={tmp}", f"data.cache_dir={tmp}/cache"])
            train_cli.run(cfg)
    finally:
        train_cli.extra_callbacks = original
        if device == "cuda":
            torch.cuda.set_sync_debug_mode("default")
    return f"{sum(checked)} of {len(checked)} steps ran with syncs as errors, none raised"


def check_lrn(device: str) -> str:
    from alexnet_lit.config import LRNConfig
    from alexnet_lit.models.lrn import LocalResponseNorm

    torch.manual_seed(0)
    a = (torch.randn(8, 96, 27, 27, device=device) * 100).contiguous(memory_format=torch.channels_last)
    g = torch.randn_like(a)
    out = {}
    for kernel, dtype in (("reference", torch.float32), ("fused", torch.bfloat16)):
        x = a.detach().to(dtype).clone().requires_grad_()
        y = LocalResponseNorm(LRNConfig(kernel=kernel), groups=2)(x)
        y.backward(g.to(dtype))
        out[kernel] = (y.float(), x.grad.float())
    torch.testing.assert_close(out["fused"][0], out["reference"][0], rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(out["fused"][1], out["reference"][1], rtol=2e-2, atol=2e-2)
    return "fused bf16 = torch's fp32 within bf16 rounding, outputs and gradients"


def check_jpeg(device: str, images: int = 64) -> str:
    """nvJPEG and libjpeg-turbo may round the inverse DCT differently: a few levels of 255 at most, measured."""
    import numpy as np

    from alexnet_lit.data import jpeg

    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.integers(-3, 4, (images, 256, 256, 3)), axis=2)  # textured but compressible squares
    squares = np.clip(smooth - smooth.min(axis=(1, 2), keepdims=True) + 40, 0, 255).astype(np.uint8)
    batch = jpeg.EncodedBatch([jpeg.Encoded(torch.frombuffer(bytearray(jpeg.encode(s, 90)), dtype=torch.uint8), 256,
                                            f"square {i}") for i, s in enumerate(squares)])
    on_device, keep = batch.decode(device)
    host = torch.stack([jpeg.decode(e.data) for e in batch.items])
    diff = (on_device.cpu().int() - host.int()).abs().max().item()
    if on_device.shape != (images, 256, 256, 3) or len(keep) != images or diff > 8:
        raise AssertionError(f"device decode of {images} JPEGs: shape {tuple(on_device.shape)}, max difference {diff}")
    start = time.perf_counter()
    for _ in range(5):
        batch.decode(device)
    if device == "cuda":
        torch.cuda.synchronize()
    rate = 5 * images / (time.perf_counter() - start)
    return f"{images} JPEGs decoded on {device} in one call: max difference {diff} levels, {rate:.0f} img/s"


def check_speed(device: str) -> str:
    cmd = [sys.executable, str(ROOT / "experiments" / "bench_train.py"), "--batch", "128", "--repeats", "2",
           "--only", "lrn", "--only", "lightning", "--only", "ckpt"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=360)
    print(proc.stdout, end="", flush=True)
    if proc.returncode != 0:
        raise AssertionError(proc.stderr.strip().splitlines()[-1])
    keys = ("lrn_vs_no_lrn fp32=", "lrn_vs_no_lrn bf16=", "checkpoint_stall_vs_write=", "lightning_vs_plain=")
    return "; ".join(line for line in proc.stdout.splitlines() if line.startswith(keys))


CHECKS = {"quickstart": check_quickstart, "ten_crop": check_ten_crop, "compile": check_compile, "jpeg": check_jpeg,
          "syncs": check_syncs, "lrn": check_lrn, "speed": check_speed}


def main() -> int:
    skip = {"speed"} if "--skip-speed" in sys.argv[1:] else set()
    if not torch.cuda.is_available():
        print("error: make check-gpu needs a CUDA GPU and torch.cuda.is_available() is False here; run it on a "
              "machine with one (the CPU runs these checks in tests/test_check_gpu.py)", file=sys.stderr)
        return 2
    from alexnet_lit.quiet import quiet

    quiet()
    print(f"device={torch.cuda.get_device_name()} torch={torch.__version__} cuda={torch.version.cuda}", flush=True)
    rows, failed = [], 0
    for name, check in CHECKS.items():
        if name in skip:
            continue
        t0 = time.perf_counter()
        try:
            outcome, ok = check("cuda"), True
        except Exception as e:  # a failed check is a row of the table, and the exit code
            outcome, ok = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", False
            failed += 1
        rows.append((name, "ok" if ok else "FAILED", time.perf_counter() - t0, outcome))
    print(f"\n{'check':<11} {'result':<7} {'s':>6}  outcome")
    for name, result, seconds, outcome in rows:
        print(f"{name:<11} {result:<7} {seconds:6.1f}  {outcome}")
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("WANDB_MODE", "offline")
    sys.exit(main())
