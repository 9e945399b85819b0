"""make bench-data: loader throughput per core, torchvision's reference pipeline against ours, same images.

    python experiments/bench_data.py [--images ../shared/data/imagenet-sample] [--seconds 10]

(a) reference: ImageFolder + PIL over the raw JPEGs, Resize(256), RandomCrop(224), RandomHorizontalFlip,
    ToTensor, Normalize (torchvision's ImageNet recipe);
(b) ours: the prepared 256 px store (format=raw; both formats side by side: bench_store.py), random 224 crop +
    flip on uint8 in the loader, batches of 128; then,
    measured apart, PCA lighting and mean-image subtraction on the batch (on_after_batch_transfer: on the GPU
    in training, so not loader work; here timed on one CPU thread and also reported combined).
Both run in one process with one torch thread, so images/s is images/s per core. The float work is also timed
fused into one pass by torch.compile, writing fp32 and bf16 (what bf16 autocast casts the input to anyway), and
checked against ours. Then the prepare throughput (decode + resize of the same raw images, one worker). Last
line: speedup_vs_reference=N.N
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision import transforms as T

from alexnet_lit.config import DataConfig, LightingConfig
from alexnet_lit.data.augment import train_transform
from alexnet_lit.data.classes import link_flat_sample
from alexnet_lit.data.lighting import Normalizer
from alexnet_lit.data.prepare import prepare
from alexnet_lit.data.store import PreparedSplit, load_stats
from alexnet_lit.machine import cpu_name

DATA = DataConfig()  # the schema's defaults: torchvision's channel mean/std, the paper's 255 pixel scale
IMAGENET_MEAN, IMAGENET_STD = DATA.mean, DATA.std


def timed(fn, seconds: float) -> float:
    """Images per second of fn() (which returns how many images it produced), after one warm-up call."""
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        n += fn()
    return n / (time.perf_counter() - start)


def main() -> None:
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imagenet-sample"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=Path, default=default)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--no-compile", action="store_true", help="skip the fused (torch.compile) float work")
    args = ap.parse_args()
    if not args.images.is_dir():
        raise SystemExit(f"{args.images} not found: pass --images DIR with <wnid>_<name>.JPEG files")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        raw, store = Path(tmp) / "raw", Path(tmp) / "store"
        n = link_flat_sample(args.images, raw)

        start = time.perf_counter()
        prepare(raw, store, splits=("train", "val"), workers=1, chunk_size=64, show_progress=False, format="raw")
        prepare_rate = 2 * n / (time.perf_counter() - start)

        reference = datasets.ImageFolder(str(raw / "train"), T.Compose([
            T.Resize(256), T.RandomCrop(224), T.RandomHorizontalFlip(), T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]))

        def reference_pass() -> int:
            for i in range(len(reference)):
                reference[i]
            return len(reference)

        ours = PreparedSplit(store, "train", train_transform(256, 224, flip=True, prepared=True))
        normalizer = Normalizer("mean_image", DATA.pixel_max, DATA.mean, DATA.std, LightingConfig(enabled=True),
                                load_stats(store / "stats.npz"))
        loader = DataLoader(ours, batch_size=128, shuffle=True, num_workers=0, drop_last=False)

        def loader_pass() -> int:  # what a DataLoader worker does per core
            return sum(len(x) for x, _ in loader)

        batch = next(iter(loader))[0]
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        on_device = batch.to(device)
        normalizer.to(device)

        def float_pass() -> int:  # what on_after_batch_transfer does: on the GPU when there is one
            normalizer(on_device.movedim(-1, -3), train=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
            return len(batch)

        def fused(out_dtype: torch.dtype):
            """Our Normalizer's own forward compiled by torch.compile (one fused pass over the batch instead of
            four), writing ``out_dtype``: bf16 is what bf16 autocast casts the network's input to anyway."""

            def work(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
                return normalizer(x, train=True, lighting_z=z).to(out_dtype)

            compiled = torch.compile(work, dynamic=False)
            z = torch.randn(len(batch), 3, device=device)
            nchw = on_device.movedim(-1, -3)
            exact = out_dtype == torch.float32
            torch.testing.assert_close(compiled(nchw, z).float(), normalizer(nchw, train=True, lighting_z=z),
                                       rtol=1e-5 if exact else 1e-2, atol=1e-3 if exact else 0.5)

            def run() -> int:
                compiled(nchw, z)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                return len(batch)
            return run

        ref_rate = timed(reference_pass, args.seconds)
        our_rate = timed(loader_pass, args.seconds)
        float_rate = timed(float_pass, args.seconds)
        fused32 = fused16 = float("nan")
        if not args.no_compile:
            fused32 = timed(fused(torch.float32), args.seconds)
            fused16 = timed(fused(torch.bfloat16), args.seconds)
        both = 1 / (1 / our_rate + 1 / float_rate)
    cpu = os.environ.get("BENCH_CPU_NAME") or cpu_name()
    print(f"images: {n} real ILSVRC-2012 JPEGs from {args.images}; cpu: {cpu}; 1 process, 1 torch thread")
    print(f"reference (ImageFolder + PIL, Resize/RandomCrop/Flip/ToTensor/Normalize): {ref_rate:8.0f} images/s/core")
    print(f"ours, loader (prepared store, random crop + flip on uint8, batches of 128): {our_rate:8.0f} images/s/core")
    where = "the GPU" if device.type == "cuda" else "1 CPU thread"
    print(f"ours, batch float work (PCA lighting + mean image, {where}): {float_rate:8.0f} images/s")
    if device.type == "cpu":
        print(f"ours, both on one CPU core (no GPU to take the float work):              {both:8.0f} images/s/core")
    print(f"float work fused by torch.compile, fp32 out ({where}): {fused32:8.0f} images/s")
    print(f"float work fused by torch.compile, bf16 out ({where}): {fused16:8.0f} images/s")
    print(f"fused_float_vs_ours={fused32 / float_rate:.1f} fused_bf16_float_vs_ours={fused16 / float_rate:.1f}")
    print(f"prepare (decode + 256 px store, 1 worker):                               {prepare_rate:8.0f} images/s/core")
    print(f"speedup_incl_float_on_cpu={both / ref_rate:.1f}")
    print(f"speedup_vs_reference={our_rate / ref_rate:.1f}")


if __name__ == "__main__":
    main()
