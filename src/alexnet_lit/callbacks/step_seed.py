"""Dropout's random numbers as a function of (seed, replica, epoch, batch): exact on resume, distinct per DDP rank.

Dropout (section 4.2, p = 0.5 in the first two fully-connected layers) is the only random draw left in the
training process: crops, flips and PCA lighting come from each sample's own seed in the workers (data/order.py).
Seeding the global generator before every batch makes a resumed run draw the masks the uninterrupted one drew,
with nothing to save; under DDP each rank draws its own masks (Lightning's ``seed_everything`` gives every rank
the same seed, so all ranks would drop the same units). Under the tower strategy the two ranks of a pair are one
replica and draw the same mask (models/towers.py keeps each its half). The cost is one hash and one
``manual_seed`` per step.
"""

from __future__ import annotations

import torch
from lightning import pytorch as pl

from alexnet_lit.data.order import derive_seed
from alexnet_lit.parallel import replica


class StepSeed(pl.Callback):
    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        rank = replica(trainer)[0]  # the two towers of a pair draw the same masks (models/towers.py)
        torch.manual_seed(derive_seed(self.seed, "dropout", rank, trainer.current_epoch, batch_idx))
