"""The paper's optimisation (section 5): SGD on two parameter groups and the plateau schedule, whose state
Lightning keeps in every checkpoint.

    python train.py model.scheduler.patience=2 model.scheduler.max_lr_reductions=3    # the paper's schedule
    python train.py model.optimizer.bias_lr_mult=2 model.optimizer.bias_weight_decay=false   # Caffe's bias rule

1. SGD, batch 128, momentum 0.9, weight decay 5e-4, lr 0.01, on weights and on biases (``group_settings``: the
   biases' lr and decay, the one place the bias rule lives).
2. "divide the learning rate by 10 when the validation error rate stopped improving": ``Plateau`` (torch's
   ReduceLROnPlateau on metrics.MONITOR, factor 0.1) that also counts its reductions in its own state.
3. "reduced three times prior to termination": after ``max_lr_reductions`` reductions, the next plateau ends
   training (``exhausted``; trainer.max_epochs is the other bound; the paper ran about 90 epochs).
``model.scheduler.name=step`` (lr x factor after each of ``milestones`` epochs: cuda-convnet's hand-lowered
rates, experiments/lrn_cifar10) and ``constant`` (Figure 1) replace steps 2-3.
"""

from __future__ import annotations

from typing import Any

import torch

from alexnet_lit.config import OptimizerConfig, OptimizerName, Scheduler, SchedulerConfig
from alexnet_lit.metrics import MONITOR
from alexnet_lit.paper_sgd import PaperSGD


class Plateau(torch.optim.lr_scheduler.ReduceLROnPlateau):
    """ReduceLROnPlateau with its reductions counted in ``state_dict`` (a resume knows how many were made)."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: SchedulerConfig) -> None:
        super().__init__(optimizer, mode="min", factor=cfg.factor, patience=cfg.patience, threshold=cfg.threshold)
        self.max_reductions, self.reductions = cfg.max_lr_reductions, 0

    def step(self, metrics: Any, epoch: int | None = None) -> None:
        before = self.optimizer.param_groups[0]["lr"]
        super().step(metrics)
        self.reductions += self.optimizer.param_groups[0]["lr"] < before

    @property
    def exhausted(self) -> bool:
        """A plateau after the last allowed reduction: training ends (step 3)."""
        return self.max_reductions is not None and self.reductions > self.max_reductions

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in super().state_dict().items() if k != "max_reductions"}  # the config's, not saved


def reductions(scheduler: Any) -> int:
    """Learning-rate reductions made so far by any of our schedules."""
    if isinstance(scheduler, Plateau):
        return scheduler.reductions
    if isinstance(scheduler, torch.optim.lr_scheduler.MultiStepLR):
        return sum(scheduler.milestones[m] for m in scheduler.milestones if m <= scheduler.last_epoch)
    return 0


def group_settings(cfg: OptimizerConfig, bias: bool) -> dict[str, float]:
    """lr and weight decay of the weights' group or the biases' (bias_lr_mult, bias_weight_decay). A decay of
    None is each layer's own (AlexNetModule adds it to the gradients): 0 here."""
    decay = cfg.weight_decay or 0.0
    if not bias:
        return {"lr": cfg.lr, "weight_decay": decay}
    return {"lr": cfg.lr * cfg.bias_lr_mult, "weight_decay": decay if cfg.bias_weight_decay else 0.0}


def configure(params: list[tuple[str, torch.nn.Parameter]], cfg: OptimizerConfig,
              sched: SchedulerConfig) -> dict[str, Any]:
    """What LightningModule.configure_optimizers returns: the optimizer on (weights, biases) and the schedule."""
    groups = [{"name": name, "params": [p for n, p in params if n.endswith("bias") == bias], "momentum": cfg.momentum,
               **group_settings(cfg, bias)} for name, bias in (("weights", False), ("biases", True))]
    optim = PaperSGD if cfg.name == OptimizerName.paper else torch.optim.SGD
    optimizer = optim(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay or 0.0)
    if sched.name == Scheduler.constant:  # Figure 1: "chosen independently", one rate per run
        return {"optimizer": optimizer}
    if sched.name == Scheduler.step:  # cuda-convnet's methodology: lower epsW by hand at given epochs
        step = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(sched.milestones), gamma=sched.factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": step, "interval": "epoch", "name": "lr"}}
    return {"optimizer": optimizer,
            "lr_scheduler": {"scheduler": Plateau(optimizer, sched), "monitor": MONITOR, "interval": "epoch",
                             "name": "lr"}}
