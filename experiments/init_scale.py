"""The paper's pixel scale against torchvision's, at the paper's init and Caffe's: LRN at init and the loss after
N steps of the paper's SGD on real ImageNet images (the 200-image sample in ../shared/data).

    python experiments/init_scale.py [--images ../shared/data/imagenet-sample] [--steps 60] [--batch 64]

For data.pixel_max in (1, 255) and model.init in (paper, caffe): the full-size network (towers=two, 1000 classes)
on the paper's data pipeline (prepared store, random 224 crops + flips, PCA lighting, mean image), SGD lr 0.01,
momentum 0.9, weight decay 5e-4. Printed per setting: the range of what reaches conv1, the LRN term
alpha * sum a^2 at lrn1 on the first batch (mean and 99th percentile; the denominator is k + that term), and the
training loss (mean of 5 steps) at the start and after N steps, against chance ln(1000) = 6.908.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch

from alexnet_lit.data import AlexNetDataModule
from alexnet_lit.data.classes import link_flat_sample
from alexnet_lit.data.prepare import prepare
from alexnet_lit.machine import cpu_name
from alexnet_lit.module import AlexNetModule


def lrn1_term(model: AlexNetModule, x: torch.Tensor) -> tuple[float, float, float]:
    """(mean, p99 of alpha * sum a^2 at lrn1, k) on batch x."""
    seen = {}
    lrn = model.net.features.lrn1
    handle = lrn.register_forward_hook(lambda m, inp, out: seen.setdefault("a", inp[0].detach()))
    with torch.no_grad():
        model(x)
    handle.remove()
    term = (lrn.denominator(seen["a"]) - lrn.k).flatten()
    sample = term[torch.randperm(term.numel(), generator=torch.Generator().manual_seed(0))[:1_000_000]]
    return term.mean().item(), sample.quantile(0.99).item(), lrn.k


def train(store: Path, pixel_max: float, init: str, steps: int, batch: int) -> dict:
    torch.manual_seed(0)
    dm = AlexNetDataModule(source="prepared", root=str(store), num_classes=1000, normalize="mean_image",
                           stats_path=str(store / "stats.npz"), lighting={"enabled": True}, pixel_max=pixel_max,
                           batch_size=batch, num_workers=0, cache_dir=str(store))
    dm.setup("fit")
    model = AlexNetModule(init=init)
    optimizer = model.configure_optimizers()["optimizer"]
    losses, out = [], {}
    while len(losses) < steps:
        for x, y, z in dm.train_dataloader():
            x = dm.normalizer(x.movedim(-1, -3), train=True, lighting_z=z)  # on_after_batch_transfer in training
            if not losses:
                out["input_min"], out["input_max"] = x.min().item(), x.max().item()
                out["lrn_mean"], out["lrn_p99"], out["k"] = lrn1_term(model.eval(), x)
                model.train()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if len(losses) == steps:
                break
    out["loss_start"], out["loss_end"] = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    return out


def main() -> None:
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imagenet-sample"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=Path, default=default)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    if not args.images.is_dir():
        raise SystemExit(f"error: {args.images} not found: pass --images DIR with <wnid>_<name>.JPEG files")
    print(f"cpu: {cpu_name()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; chance ln(1000) = {math.log(1000):.3f}")
    with tempfile.TemporaryDirectory() as tmp:
        n = link_flat_sample(args.images, Path(tmp) / "raw")
        prepare(Path(tmp) / "raw", Path(tmp) / "store", workers=2, show_progress=False)
        print(f"{n} images, {args.steps} steps of batch {args.batch}")
        print("pixel_max init   conv1 input range   lrn1 alpha*sum a^2 mean / p99 (k)   loss start -> end   s")
        for pixel_max in (1.0, 255.0):
            for init in ("paper", "caffe"):
                start = time.perf_counter()
                r = train(Path(tmp) / "store", pixel_max, init, args.steps, args.batch)
                print(f"{pixel_max:9g} {init:6} [{r['input_min']:7.1f}, {r['input_max']:6.1f}]   "
                      f"{r['lrn_mean']:10.3g} / {r['lrn_p99']:9.3g} ({r['k']:g})       "
                      f"{r['loss_start']:.3f} -> {r['loss_end']:.3f}   {time.perf_counter() - start:.0f}", flush=True)


if __name__ == "__main__":
    main()
