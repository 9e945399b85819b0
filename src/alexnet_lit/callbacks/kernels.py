"""Figure 3 of the paper (section 6.1): the conv1 kernels as an image grid, towers apart, and how colour-specific
each tower's kernels are ("the kernels on GPU 1 are largely color-agnostic, while the kernels on GPU 2 are
largely color-specific").

    alexnet-kernels ckpt_path=logs/paper/runs/<id>/checkpoints/last.ckpt out=conv1.png    # a checkpoint
    python train.py callbacks.kernels.every_n_epochs=5                                   # during training

Colour measure: a kernel W (3 x 11 x 11) splits into its grey part (the mean over the RGB channels, repeated) and
its chromatic part (W minus that). ``colour_fraction`` is the chromatic part's share of the kernel's energy,
||W - grey(W)||^2 / ||W||^2: 0 for a kernel that treats R, G and B alike (colour-agnostic), 2/3 for one that
looks at a single channel, 1 for an opponent pair (+R -G). A tower's number is the mean over its kernels. With
``model.towers=two`` tower 1 is conv1's first half of kernels (they feed tower 1's conv2, a grouped conv), tower
2 the second half; with one tower there is one number.

Display: each kernel scaled to [0, 1] on its own (min to max over its 3 x 11 x 11 values), as visualisations of
Figure 3 usually do, so weak kernels stay visible; 1 px gaps, a wider gap between the towers.
"""

from __future__ import annotations

from pathlib import Path

import torch
from lightning import pytorch as pl
from lightning.pytorch.utilities import rank_zero_only
from torchvision.utils import make_grid, save_image

from alexnet_lit.models.towers import full


def colour_fraction(weight: torch.Tensor) -> torch.Tensor:
    """Per kernel (out, 3, h, w) -> (out,): the chromatic part's share of its energy, in [0, 1]."""
    w = weight.detach().float()
    grey = w.mean(dim=1, keepdim=True)
    energy = w.pow(2).sum(dim=(1, 2, 3)).clamp_min(1e-30)
    return (w - grey).pow(2).sum(dim=(1, 2, 3)) / energy


def towers_of(weight: torch.Tensor, towers: int) -> list[torch.Tensor]:
    """conv1's kernels split by tower: the first half feeds tower 1, the second tower 2 (Figure 2)."""
    return list(weight.chunk(towers, dim=0)) if towers > 1 else [weight]


def tower_colour(weight: torch.Tensor, towers: int) -> list[float]:
    return [float(colour_fraction(w).mean()) for w in towers_of(weight, towers)]


def kernel_image(weight: torch.Tensor, towers: int, per_row: int = 8) -> torch.Tensor:
    """(3, H, W) float image in [0, 1]: each tower's kernels as a grid, the towers side by side."""
    grids = []
    for w in towers_of(weight.detach().float().cpu(), towers):
        lo = w.amin(dim=(1, 2, 3), keepdim=True)
        hi = w.amax(dim=(1, 2, 3), keepdim=True)
        scaled = (w - lo) / (hi - lo).clamp_min(1e-12)
        grids.append(make_grid(scaled, nrow=per_row, padding=1, pad_value=1.0))
    height = max(g.shape[1] for g in grids)
    gap = torch.ones(3, height, 6)
    parts = []
    for i, g in enumerate(grids):
        padded = torch.ones(3, height, g.shape[2])
        padded[:, : g.shape[1]] = g
        parts += [gap, padded] if i else [padded]
    return torch.cat(parts, dim=2)


def conv1_of(module) -> tuple[torch.Tensor, int]:
    """conv1's whole weight and the number of towers of an AlexNetModule (or AlexNet). With one tower per device
    (trainer=towers) this gathers both halves: every rank must call it."""
    net = getattr(module, "net", module)
    towers = 2 if str(getattr(net.towers, "value", net.towers)) == "two" else 1
    return full(net.weighted_layers()["conv1"].weight), towers


def save(module, path: str | Path, scale: int = 4) -> list[float]:
    """Draw conv1 of ``module`` to ``path`` (PNG, each pixel ``scale`` x ``scale``); returns the towers' colour."""
    return save_weight(*conv1_of(module), path, scale)


def save_weight(weight: torch.Tensor, towers: int, path: str | Path, scale: int = 4) -> list[float]:
    img = kernel_image(weight, towers)
    img = torch.nn.functional.interpolate(img[None], scale_factor=scale, mode="nearest")[0]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_image(img, str(path))
    return tower_colour(weight, towers)


class Conv1Kernels(pl.Callback):
    """Every ``every_n_epochs`` epochs (and at the end of fit): ``<run>/figures/conv1-epochNNN.png``, the image in
    W&B (``conv1/kernels``) and ``conv1/colour_tower1`` (``_tower2``) in every logger."""

    def __init__(self, dirpath: str, every_n_epochs: int = 1) -> None:
        self.dirpath, self.every_n_epochs = Path(dirpath), every_n_epochs

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        self.draw(trainer, *conv1_of(pl_module))  # (on every rank: with towers on two devices it gathers)

    @rank_zero_only
    def draw(self, trainer: pl.Trainer, weight: torch.Tensor, towers: int) -> None:
        path = self.dirpath / f"conv1-epoch{trainer.current_epoch:03d}.png"
        colours = save_weight(weight, towers, path)
        metrics = {f"conv1/colour_tower{i + 1}": c for i, c in enumerate(colours)}
        for lg in trainer.loggers:
            lg.log_metrics(metrics, step=trainer.global_step)
            if hasattr(lg, "log_image"):
                lg.log_image("conv1/kernels", images=[str(path)], step=trainer.global_step,
                             caption=[" / ".join(f"tower {i + 1} colour {c:.2f}" for i, c in enumerate(colours))])
