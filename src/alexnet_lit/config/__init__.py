"""Every setting's one home: its type, its allowed values and its default (the paper's, where the paper gives one),
one file per group: model.py, data.py, train.py (the whole run: trainer, paths, top-level keys), tools.py (the other
entry points), choices.py (the allowed values), fields.py (how a field declares and checks its range).

``conf/train.yaml`` starts its defaults list with ``train_schema``, so every YAML file and every command-line
override is merged into these dataclasses: an unknown key, a wrong type or an unknown choice fails at composition,
naming the key. YAML group files hold only what differs from the defaults here; ``python train.py --cfg job``
prints the composed result. Constructors (``AlexNet``, ``AlexNetModule``, ``AlexNetDataModule``) take the same
keys and check them with the same schema (``build``), so a default is never written twice.

Checks, each in one place:
- one key's type or choice: the schema (OmegaConf), at composition; its range (``ranged``, fields.py, next to the
  default): ``build``, which every constructor and ``validate`` run;
- the network's geometry (kernel counts with two towers, the crop against the paper's strides, removable
  layers): ``alexnet_lit.models.alexnet.check``, which ``AlexNet`` runs and every entry point runs before data;
- the data group's combinations (crop against resize, statistics a recipe needs): ``check_data`` (data.py), which
  ``AlexNetDataModule`` runs and ``validate`` (train.py: keys across groups, before any data) calls.

The schemas are registered in Hydra's ConfigStore on import of this module and by the Hydra plugin
``hydra_plugins/alexnet_lit`` that Hydra loads itself, so composing works whatever was imported first.
"""

from __future__ import annotations

from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from alexnet_lit.config.choices import (
    Activation,
    Arch,
    AugmentOn,
    Chroma,
    Init,
    LightingMagnitude,
    LRNConvention,
    LRNKernel,
    Normalize,
    OptimizerName,
    Pool,
    Scheduler,
    Source,
    StoreFormat,
    TowerConv,
    Towers,
)
from alexnet_lit.config.data import SIDE, DataConfig, GeneratedConfig, LightingConfig, check_data
from alexnet_lit.config.fields import ConfigError, build, check_field, check_ranges, describe_error, plain, ranged
from alexnet_lit.config.model import LRNConfig, ModelConfig, NetConfig, OptimizerConfig, SchedulerConfig
from alexnet_lit.config.tools import KernelsConfig, NeighboursConfig, PredictConfig, PrepareConfig, ReportConfig
from alexnet_lit.config.train import PathsConfig, TrainConfig, TrainerConfig, validate

__all__ = ["SIDE", "Activation", "Arch", "AugmentOn", "Chroma", "ConfigError", "DataConfig", "GeneratedConfig", "Init",
           "KernelsConfig", "LRNConfig", "LRNConvention", "LRNKernel", "LightingConfig", "LightingMagnitude",
           "ModelConfig", "NeighboursConfig", "NetConfig", "Normalize", "OptimizerConfig", "OptimizerName",
           "PathsConfig", "Pool", "PredictConfig", "PrepareConfig", "ReportConfig", "Scheduler", "SchedulerConfig",
           "Source", "StoreFormat", "TowerConv", "Towers", "TrainConfig", "TrainerConfig", "build", "check_data",
           "check_field", "check_ranges", "describe_error", "plain", "ranged", "register", "validate"]


def alexnet_else(arch: str, on_alexnet: Any, otherwise: Any) -> Any:
    """${alexnet_else:${model.arch},A,B} (conf/debug/tiny.yaml): A on AlexNet, B on a CIFAR net, whose layer files
    fix the sizes that AlexNet's switches change (models/cuda_convnet.py ALEXNET_ONLY)."""
    return on_alexnet if getattr(arch, "value", arch) == "alexnet" else otherwise


def register() -> None:
    from alexnet_lit.machine import cpu_precision

    # ${cpu_precision:} in conf/trainer/cpu.yaml: bf16 autocast where the CPU has bf16 instructions, else fp32
    OmegaConf.register_new_resolver("cpu_precision", cpu_precision, replace=True)
    OmegaConf.register_new_resolver("alexnet_else", alexnet_else, replace=True)
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
    ConfigStore.instance().store(name="prepare_schema", node=PrepareConfig)
    ConfigStore.instance().store(name="report_schema", node=ReportConfig)
    ConfigStore.instance().store(name="predict_schema", node=PredictConfig)
    ConfigStore.instance().store(name="neighbours_schema", node=NeighboursConfig)
    ConfigStore.instance().store(name="kernels_schema", node=KernelsConfig)


register()
