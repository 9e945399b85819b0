from alexnet_lit.callbacks.chance import StuckAtChance

__all__ = ["StuckAtChance"]
