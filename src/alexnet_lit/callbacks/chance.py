"""Warn when training never leaves chance level.

With the paper's init (weights N(0, 0.01), biases 1; section 5) many re-implementations report a training loss
that sits at ln(1000) = 6.91 for a long time or for good. After ``after_steps`` steps this callback compares the
mean loss of the last ``window`` steps with ln(num_classes); within ``margin`` (a fraction of ln C) it warns,
naming the likely cause and the fix, and with ``stop=true`` ends the run. Its settings live in
conf/callbacks/default.yaml.

The input scale does not rescue the paper's init: on the 200-image ImageNet sample (``python
experiments/init_scale.py``, 50 SGD steps of 32, full-size net) its loss starts at 8.83 (above ln 1000: the biases
of 1 make the logits spread, nearly the same for every image) and ends at 6.20 with raw 0..255 pixels
(``data.pixel_max=255``, the paper's) and at 6.20 with [0, 1] pixels: what it learned is the sample's class prior
(ln 200 = 5.30), not the images. Caffe's init goes from 6.92 to 5.73 (255) and 5.86 (1).

Cost: the losses of the window stay on the device; the check reads them once (one host sync per run, not one per
step), after averaging them over every DDP rank, so all ranks take the same decision and none waits for the
others at a collective they skipped.
"""

from __future__ import annotations

import math
from collections import deque

import torch
from lightning import pytorch as pl
from lightning.pytorch.utilities import rank_zero_warn

from alexnet_lit.callbacks.cadence import logging_step


def likely_fix(pl_module: pl.LightningModule) -> str:
    """The cause and the fix for this net's init and unit (measured: experiments/ablations/README.md)."""
    hp = getattr(pl_module, "hparams", {}) or {}
    init, activation = str(hp.get("init", "paper")), str(hp.get("activation", "relu"))
    if "tanh" in activation and init in ("paper", "caffe"):
        return (f"The likely cause is model.init={init} with tanh units: its positive biases are made for ReLUs "
                f"(section 5); the tanh net's logits hardly depend on the image, and neither caffe's init, a larger "
                f"lr nor [0, 1] pixels move it. Fix: model.init=lecun (N(0, 1/fan-in), zero biases; "
                f"+experiment=tanh uses it).")
    if init in ("paper", "caffe"):
        return (f"The likely cause is model.init={init} (fixed stds; the paper's biases of 1), with which runs that "
                f"never leave ln 1000 are widely reported: the biases dominate every layer's activations, so the "
                f"output hardly depends on the image, at either pixel scale. Fix: model.init=kaiming (or caffe), "
                f"model.init_full_size_gain=true on a narrower or smaller net, or a lower model.optimizer.lr.")
    return (f"model.init={init} keeps each layer's gain, so look at the learning rate (model.optimizer.lr: too low "
            f"to move, or so high the units saturate) and at the input (data.pixel_max, the mean image).")


class StuckAtChance(pl.Callback):
    def __init__(self, after_steps: int, window: int, margin: float, stop: bool) -> None:
        self.after_steps, self.window, self.margin, self.stop = after_steps, window, margin, stop
        self.losses: deque[torch.Tensor] = deque(maxlen=window)
        self.checked = False

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx):
        step = trainer.global_step
        if self.checked or outputs is None or step <= self.after_steps - self.window:
            return
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.losses.append(loss.detach())  # stays on the device: no sync here
        if step < self.after_steps or not logging_step(trainer):  # decide on a logging step: no extra sync
            return
        self.checked = True
        device = loss.device  # entries restored from a checkpoint are on the CPU
        window = torch.stack([past.to(device).float() for past in self.losses])
        mean = trainer.strategy.reduce(window.mean(), reduce_op="mean")
        mean = float(mean)  # the one host sync
        chance = math.log(pl_module.num_classes)
        if abs(mean - chance) <= self.margin * chance:
            action = "Stopping (callbacks.chance.stop=true)." if self.stop else "callbacks.chance.stop=true stops."
            rank_zero_warn(
                f"STUCK AT CHANCE: after {step} steps train/loss averages {mean:.3f}, within {self.margin:.0%} of "
                f"ln({pl_module.num_classes}) = {chance:.3f}: the network predicts uniformly. {likely_fix(pl_module)} "
                f"{action}"
            )
            if self.stop:
                trainer.should_stop = True

    def state_dict(self) -> dict:
        """The decision and the window so far (a resume inside the window decides on the same losses)."""
        window = torch.stack([loss.detach().float().cpu() for loss in self.losses]) if self.losses else torch.zeros(0)
        return {"checked": self.checked, "window": window}

    def load_state_dict(self, state_dict: dict) -> None:
        self.checked = bool(state_dict.get("checked", False))
        self.losses.clear()
        self.losses.extend(state_dict.get("window", torch.zeros(0)).unbind(0))
