"""The tanh unit with its two constants, f(x) = a tanh(b x) (cuda-convnet's ``neuron=tanh[a,b]``).

Section 3.1 compares ReLUs with "the standard way to model a neuron's output f as a function of its input x",
f(x) = tanh(x), and gives no constants. ``model.activation=tanh`` is that, a = b = 1 (``nn.Tanh``);
``model.activation=lecun_tanh`` is LeCun et al.'s (1998) 1.7159 tanh(2x/3), scaled so that f(1) = 1 and f is
steepest where unit-variance inputs sit. Figure 1 is measured with both (experiments/figure1).
"""

from __future__ import annotations

import torch
from torch import nn

LECUN = (1.7159, 2.0 / 3.0)  # (a, b): "Efficient BackProp", section 4.4


class ScaledTanh(nn.Module):
    def __init__(self, a: float = LECUN[0], b: float = LECUN[1]) -> None:
        super().__init__()
        self.a, self.b = float(a), float(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x * self.b) * self.a

    def extra_repr(self) -> str:
        return f"{self.a:g} tanh({self.b:.4g} x)"
