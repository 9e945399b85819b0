"""alexnet-lit: AlexNet (Krizhevsky, Sutskever, Hinton, NeurIPS 2012) reproduced and ablated with Lightning + Hydra."""

__version__ = "0.1.0"
