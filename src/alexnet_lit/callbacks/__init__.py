from alexnet_lit.callbacks.chance import StuckAtChance
from alexnet_lit.callbacks.step_seed import StepSeed
from alexnet_lit.callbacks.stop import Diverged, StopSafely

__all__ = ["Diverged", "StepSeed", "StopSafely", "StuckAtChance"]
