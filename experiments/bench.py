"""make bench: the real data pipeline feeding the paper's network; which side is the bottleneck.

    python experiments/bench.py                        # 200 real ILSVRC-2012 images (../shared/data), full size
    python experiments/bench.py --batch 64 --epochs 4 --workers 2

1. The 200-image sample becomes a prepared store (alexnet-prepare, 256 px; the same images as train and val).
2. The loader alone: the training loader of that store (workers cut uint8 crops) and the float work of
   ``on_after_batch_transfer`` (PCA lighting, mean image), no model: images/s the data side can deliver.
3. Training: ``train.py +experiment=paper`` on the store (trainer=gpu where CUDA is, else trainer=cpu; the
   default callbacks, CSV logger), reading back from its CSV ``train/device/samples_per_sec`` and
   ``train/data_wait`` (the share of the step spent waiting for the next batch).
Verdict: the data side is the bottleneck when data_wait is above 0.2 or the loader alone is not faster than the
training; otherwise the model is. Prints the CPU first; the last line is data_wait=N.NN.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from alexnet_lit.data.classes import link_flat_sample
from alexnet_lit.data.prepare import prepare
from alexnet_lit.machine import cpu_bf16, cpu_name

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "imagenet-sample"


def loader_alone(store: Path, batch: int, workers: int, batches: int) -> float:
    from hydra import compose, initialize_config_dir

    from alexnet_lit.config import plain
    from alexnet_lit.data import AlexNetDataModule

    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["+experiment=paper", f"data.root={store}", f"data.batch_size={batch}",
                                          f"data.num_workers={workers}"])
    dm = AlexNetDataModule(**plain(cfg.data))
    dm.setup("fit")

    dm.trainer = SimpleNamespace(training=True, testing=False, global_rank=0, world_size=1)  # what it asks of one
    n, start = 0, 0.0
    while n < batches:
        for b in dm.train_dataloader():
            dm.on_after_batch_transfer(b, 0)
            if n == 1:
                start = time.perf_counter()  # after the workers' start and the first batch
            n += 1
            if n == batches:
                break
    return batch * (batches - 1) / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=Path, default=SAMPLE)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--width", type=float, default=1.0)
    args = p.parse_args()
    if not args.images.is_dir():
        raise SystemExit(f"error: {args.images} not found: pass --images DIR with <wnid>_<name>.JPEG files")
    print(f"cpu={cpu_name()} bf16={cpu_bf16()} cores={os.cpu_count()} torch={torch.__version__}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw, store = Path(tmp) / "raw", Path(tmp) / "store"
        n = link_flat_sample(args.images, raw)
        prepare(raw, store, splits=("train", "val"), workers=args.workers, show_progress=False)
        steps = args.epochs * (n // args.batch)
        loader = loader_alone(store, args.batch, args.workers, max(steps, 8))
        print(f"loader alone ({args.workers} workers, crops + float work in this process): {loader:8.0f} img/s",
              flush=True)
        cmd = [sys.executable, str(ROOT / "train.py"), "+experiment=paper", f"data.root={store}",
               f"trainer={'gpu' if torch.cuda.is_available() else 'cpu'}",
               f"data.batch_size={args.batch}", f"data.num_workers={args.workers}", f"trainer.max_epochs={args.epochs}",
               "trainer.log_every_n_steps=2", "test=false", "logger=csv_only", "checkpoint_every_n_steps=null",
               "model.channels_last=true", f"model.width={args.width}", f"paths.log_dir={tmp}/logs", "run_id=bench",
               "callbacks.throughput.window_size=2", "callbacks.kernels=null"]
        subprocess.run(cmd, check=True, cwd=tmp, capture_output=True, text=True,
                       env={**os.environ, "WANDB_MODE": "offline"})
        with open(Path(tmp) / "logs" / "paper" / "runs" / "bench" / "csv" / "metrics.csv") as f:
            rows = list(csv.DictReader(f))
    key = "train/device/samples_per_sec"  # one process (with replicas: train/samples_per_sec, all of them)
    rates = [float(r[key]) for r in rows if r.get(key)]
    waits = [float(r["train/data_wait"]) for r in rows if r.get("train/data_wait")]
    train, wait = statistics.median(rates), statistics.median(waits)
    print(f"training, the paper's net (width {args.width}), batch {args.batch}, {args.epochs} epochs of {n} images: "
          f"{train:8.1f} img/s, data_wait {wait:.2f} (median over {len(waits)} logged points)")
    side = "data" if wait > 0.2 or loader <= train else "model"
    print(f"bottleneck: the {side} (loader alone {loader / train:.0f}x the training rate)")
    print(f"data_wait={wait:.2f}")


if __name__ == "__main__":
    main()
