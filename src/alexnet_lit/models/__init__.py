"""The networks: AlexNet (alexnet.py) and cuda-convnet's CIFAR-10 nets (cuda_convnet.py), by ``model.arch``."""

from alexnet_lit.config import Arch, NetConfig
from alexnet_lit.models.alexnet import AlexNet, feature_map_sizes
from alexnet_lit.models.cuda_convnet import CudaConvnetNet


def build(cfg: NetConfig):
    """The network of ``cfg.arch`` (its checks run in its constructor)."""
    return AlexNet(cfg) if Arch(cfg.arch) == Arch.alexnet else CudaConvnetNet(cfg)


def check(cfg: NetConfig) -> None:
    """The network's checks before any data is read (entry points): ConfigError naming the key."""
    from alexnet_lit.models import alexnet, cuda_convnet

    (alexnet.check if Arch(cfg.arch) == Arch.alexnet else cuda_convnet.check)(cfg)


__all__ = ["AlexNet", "CudaConvnetNet", "build", "check", "feature_map_sizes"]
