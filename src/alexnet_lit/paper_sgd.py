"""The paper's exact SGD update rule (section 5), next to torch's.

Paper:          v <- 0.9 v - 0.0005 lr w - lr grad;      w <- w + v
torch.optim.SGD: b <- 0.9 b + (grad + 0.0005 w);          w <- w - lr b

With a constant learning rate the two are the same (v = -lr b). They differ when the learning rate drops: the
paper's velocity keeps the steps taken at the old rate, while torch's buffer is rescaled by the new rate at once.
``model.optimizer.name=paper`` selects this rule; ``sgd`` (the default) is torch's.
"""

from __future__ import annotations

import torch
from torch.optim import Optimizer


class PaperSGD(Optimizer):
    def __init__(self, params, lr: float, momentum: float, weight_decay: float) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"PaperSGD: lr, momentum, weight_decay must be >= 0, got {lr}, {momentum}, {weight_decay}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(p)
                v = state["velocity"]
                v.mul_(mu).add_(p, alpha=-wd * lr).add_(p.grad, alpha=-lr)
                p.add_(v)
        return loss
