"""Warn when training never leaves chance level.

With the paper's init (weights N(0, 0.01), biases 1; section 5) many re-implementations report a training loss
that sits at ln(1000) = 6.91 for a long time or for good. After ``after_steps`` steps this callback compares the
mean loss of the last ``window`` steps with ln(num_classes); within ``margin`` (a fraction of ln C) it warns,
naming the likely cause and the fix, and with ``stop=true`` ends the run.
"""

from __future__ import annotations

import math
from collections import deque

from lightning import pytorch as pl
from lightning.pytorch.utilities import rank_zero_warn


class StuckAtChance(pl.Callback):
    def __init__(self, after_steps: int = 2000, window: int = 50, margin: float = 0.02, stop: bool = False) -> None:
        self.after_steps, self.margin, self.stop = after_steps, margin, stop
        self.losses: deque[float] = deque(maxlen=window)
        self.checked = False

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx):
        if self.checked or outputs is None:
            return
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.losses.append(float(loss.detach()))
        if trainer.global_step < self.after_steps:
            return
        self.checked = True
        chance = math.log(pl_module.num_classes)
        mean = sum(self.losses) / len(self.losses)
        if abs(mean - chance) <= self.margin * chance:
            action = "Stopping (callbacks.chance.stop=true)." if self.stop else "callbacks.chance.stop=true stops."
            rank_zero_warn(
                f"STUCK AT CHANCE: after {trainer.global_step} steps train/loss averages {mean:.3f}, within "
                f"{self.margin:.0%} of ln({pl_module.num_classes}) = {chance:.3f}: the network predicts uniformly. "
                f"The likely cause is the paper's init (N(0, 0.01) weights, biases 1), with which runs that never "
                f"leave ln 1000 are widely reported. Fix: model.init=caffe (or kaiming) or a lower model.optimizer.lr. "
                f"{action}"
            )
            if self.stop:
                trainer.should_stop = True

    def state_dict(self) -> dict:
        return {"checked": self.checked}

    def load_state_dict(self, state_dict: dict) -> None:
        self.checked = bool(state_dict.get("checked", False))
