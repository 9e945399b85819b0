"""Figure 1 of the paper (section 3.1): a four-layer convolutional net on CIFAR-10 reaches 25% training error
six times faster with ReLUs than with tanh units.

    python experiments/figure1/figure1.py                          # the search, the plot, the ratios (~15 min)
    python experiments/figure1/figure1.py train_images=50000 max_epochs=60 lrs=0.005,0.01,0.02
    python experiments/figure1/figure1.py plot                     # redraw from results.json

"The learning rates for each network were chosen independently to make training as fast as possible. No
regularization of any kind was employed." So, for each activation:
1. Train the same net (below) from the same initial weights (per seed) with each learning rate of a grid, SGD
   with momentum 0.9, no weight decay, no dropout, no augmentation, batch 128; CIFAR-10 from ../shared/data,
   each training image on [0, 1] pixels minus the per-pixel mean image (with raw 0..255 values PyTorch's default
   init would start the tanh net saturated, which is about the init, not the unit).
2. Record the training error of every epoch (the mean over the epoch's batches, as cuda-convnet reported it)
   and stop at 25% or at ``max_epochs``.
3. Per activation, the fastest learning rate is the one that reaches 25% in the fewest epochs (fewest batches
   within that epoch as the tie-break; lower final error when none reaches it).
4. Ratio (the paper's protocol): epochs of the fastest tanh run / epochs of the fastest ReLU run. Naive protocol:
   both at the ReLU's best learning rate. A run that never reached 25% gives a lower bound (">=").

The net: cuda-convnet's CIFAR-10 net that trains in 80 seconds (``layers-80sec.cfg``), the usual reading of the
paper's "four-layer convolutional neural network": conv 5x5 32 -> max-pool 3/2 -> conv 5x5 32 -> max-pool 3/2 ->
conv 5x5 64 -> max-pool 3/2 -> fc 10 (three conv layers and one fully-connected; cuda-convnet's average pools are
max pools here, the paper's choice). Default init (PyTorch's), the same for both activations. ``train_images``
takes the first N images of each class's sorted files (default 10,000 of 50,000, for a 2-core CPU: a documented
departure; the ratio is what the figure is about). Writes experiments/figure1/results.json and figure1.png.
"""

from __future__ import annotations

import json
import os
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from alexnet_lit.machine import cpu_name

HERE = Path(__file__).resolve().parent
TARBALL = HERE.parents[1].parent / "shared" / "data" / "cifar10-jpg.tar.gz"
CACHE = Path(os.environ.get("ALEXNET_LIT_CACHE", Path.home() / ".cache" / "alexnet-lit"))
TARGET = 0.25
DEFAULTS = {"train_images": 10000, "max_epochs": 25, "lrs": "0.005,0.01,0.02,0.04", "seed": 0,
            "batch_size": 128, "threads": 0, "out_dir": str(HERE)}


def four_layer_net(activation: str) -> nn.Sequential:
    act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
    return nn.Sequential(
        nn.Conv2d(3, 32, 5, padding=2), act(), nn.MaxPool2d(3, 2),   # 32 -> 15
        nn.Conv2d(32, 32, 5, padding=2), act(), nn.MaxPool2d(3, 2),  # 15 -> 7
        nn.Conv2d(32, 64, 5, padding=2), act(), nn.MaxPool2d(3, 2),  # 7 -> 3
        nn.Flatten(), nn.Linear(64 * 3 * 3, 10),
    )


def cifar_train(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n / 10 images of each class (sorted file names) as uint8 (N, 3, 32, 32), decoded once and cached."""
    from PIL import Image

    cached = CACHE / f"figure1-cifar10-train{n}.npz"
    if cached.is_file():
        z = np.load(cached)
        return torch.from_numpy(z["x"]), torch.from_numpy(z["y"])
    raw = CACHE / "cifar10-jpg"
    if not (raw / "train").is_dir():
        if not TARBALL.is_file():
            sys.exit(f"error: {TARBALL} not found: Figure 1 reads CIFAR-10 from ../shared/data (see its README)")
        raw.mkdir(parents=True, exist_ok=True)
        with tarfile.open(TARBALL) as tar:
            tar.extractall(raw, filter="data")
    classes = sorted(p.name for p in (raw / "train").iterdir() if p.is_dir())
    xs, ys = [], []
    for label, c in enumerate(classes):
        for f in sorted((raw / "train" / c).iterdir())[: n // len(classes)]:
            xs.append(np.asarray(Image.open(f).convert("RGB"), dtype=np.uint8))
            ys.append(label)
    x = np.stack(xs).transpose(0, 3, 1, 2).copy()
    y = np.asarray(ys, dtype=np.int64)
    cached.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cached, x=x, y=y)
    return torch.from_numpy(x), torch.from_numpy(y)


def train(x: torch.Tensor, y: torch.Tensor, activation: str, lr: float, opts: dict) -> dict:
    """Train until the epoch's training error is at most 25% or max_epochs; the error of every epoch."""
    torch.manual_seed(opts["seed"])
    net = four_layer_net(activation)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    g = torch.Generator().manual_seed(opts["seed"])
    errors, reached, t0 = [], None, time.monotonic()
    bs = opts["batch_size"]
    for epoch in range(opts["max_epochs"]):
        order = torch.randperm(len(x), generator=g)
        wrong = seen = 0
        for s in range(0, len(x) - bs + 1, bs):
            idx = order[s: s + bs]
            out = net(x[idx])
            loss = nn.functional.cross_entropy(out, y[idx])
            if not torch.isfinite(loss):
                return {"activation": activation, "lr": lr, "errors": errors, "reached": None, "diverged": True,
                        "seconds": time.monotonic() - t0}
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            wrong += int((out.argmax(1) != y[idx]).sum())
            seen += len(idx)
        errors.append(wrong / seen)
        print(f"  {activation} lr {lr:g} epoch {epoch + 1}: train error {errors[-1]:.4f}", flush=True)
        if errors[-1] <= TARGET:
            reached = epoch + 1
            break
    return {"activation": activation, "lr": lr, "errors": errors, "reached": reached, "diverged": False,
            "seconds": time.monotonic() - t0}


def fastest(runs: list[dict]) -> dict:
    done = [r for r in runs if r["reached"]]
    if done:
        return min(done, key=lambda r: (r["reached"], r["errors"][-1]))
    return min(runs, key=lambda r: r["errors"][-1] if r["errors"] else 1.0)


def ratio(relu: dict, tanh: dict, max_epochs: int) -> str:
    if relu["reached"] is None:
        return "undefined (ReLU did not reach 25%)"
    if tanh["reached"] is None:
        return f">= {max_epochs / relu['reached']:.1f} (tanh did not reach 25% in {max_epochs} epochs)"
    return f"{tanh['reached'] / relu['reached']:.1f}"


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, (title, key) in zip(axes, (("each net at its fastest learning rate (the paper's protocol)", "best"),
                                       ("both at the ReLU's learning rate (naive)", "naive"))):
        for act, style in (("relu", "-"), ("tanh", "--")):
            r = results[key][act]
            ax.plot(range(1, len(r["errors"]) + 1), r["errors"], style, color="k",
                    label=f"{act}, lr {r['lr']:g}" + (f": 25% at epoch {r['reached']}" if r["reached"] else ""))
        ax.axhline(TARGET, color="C3", lw=0.8)
        ax.set_xlabel("epochs")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("training error rate")
    axes[0].set_ylim(0, 0.8)
    fig.suptitle(f"Figure 1 on {results['train_images']:,} CIFAR-10 training images: ratio "
                 f"{results['ratio_best']} (paper: 6), naive {results['ratio_naive']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "figure1.png", dpi=120)
    plt.close(fig)


def main(argv: list[str]) -> None:
    opts = {**DEFAULTS, **dict(a.split("=", 1) for a in argv if "=" in a)}
    for k in ("train_images", "max_epochs", "seed", "batch_size", "threads"):
        opts[k] = int(opts[k])
    out = Path(opts["out_dir"])
    if "plot" in argv:
        plot(json.loads((out / "results.json").read_text()), out)
        return
    if opts["threads"]:
        torch.set_num_threads(opts["threads"])
    lrs = [float(v) for v in str(opts["lrs"]).split(",")]
    print(f"machine: {cpu_name()}, {len(os.sched_getaffinity(0))} cores, {torch.get_num_threads()} threads", flush=True)
    t0 = time.monotonic()
    x, y = cifar_train(opts["train_images"])
    mean = x.float().mean(0, keepdim=True)
    xf = (x.float() - mean) / 255.0  # [0, 1] pixels minus the mean image: PyTorch's default init expects unit scale
    runs = {act: [train(xf, y, act, lr, opts) for lr in lrs] for act in ("relu", "tanh")}
    best = {act: fastest(rs) for act, rs in runs.items()}
    naive_tanh = next(r for r in runs["tanh"] if r["lr"] == best["relu"]["lr"])
    results = {"train_images": len(x), "max_epochs": opts["max_epochs"], "lrs": lrs, "runs": runs,
               "best": best, "naive": {"relu": best["relu"], "tanh": naive_tanh},
               "ratio_best": ratio(best["relu"], best["tanh"], opts["max_epochs"]),
               "ratio_naive": ratio(best["relu"], naive_tanh, opts["max_epochs"]),
               "machine": cpu_name(), "seconds": time.monotonic() - t0,
               "date": time.strftime("%Y-%m-%d"), "command": "python experiments/figure1/figure1.py " + " ".join(argv)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    plot(results, out)
    for act in ("relu", "tanh"):
        print(f"{act}: " + ", ".join(f"lr {r['lr']:g} -> {r['reached'] or '-'}" for r in runs[act]))
    print(f"ratio (each at its fastest lr): {results['ratio_best']}; naive (both at lr {best['relu']['lr']:g}): "
          f"{results['ratio_naive']}; took {results['seconds'] / 60:.1f} min; {out / 'figure1.png'}")


if __name__ == "__main__":
    main(sys.argv[1:])
