from alexnet_lit.data.datamodule import AlexNetDataModule

__all__ = ["AlexNetDataModule"]
