"""The two-tower strategy: Lightning's ModelParallelStrategy with a (data-parallel x 2 towers) device mesh.

    python train.py +experiment=two_gpu trainer=towers            # 2 GPUs: one tower each (2 x N GPUs: N pairs)
    python train.py +experiment=quickstart trainer=towers_cpu     # the same on 2 gloo processes of this CPU

2 x N devices are N data-parallel replicas of a tower pair: ranks 2i and 2i+1 hold the two towers of replica i
(on a node of 8 GPUs the pairs are neighbours, NVLink-close). The batch is split over replicas only, never over
the towers of a pair: both towers see the same images (samplers shard by ``replica(trainer)``), and the towers'
shard gradients are averaged over the replicas after backward (models/towers.py ``average_gradients``).

What we add to ``ModelParallelStrategy``:
1. the mesh's sizes from the world size (towers fixed at 2; Lightning's "auto" would make every process of a node
   one tensor-parallel rank);
2. checkpoints in the one-device layout, optimizer state included: Lightning gathers the sharded weights into one
   file itself (``save_distributed_checkpoint=False``), but numbers the optimizer's parameters in
   ``model.parameters()`` order, while a one-device checkpoint (``optimizer.state_dict()``) numbers them in the
   order of the optimizer's parameter groups (weights, then biases, module.py). We save and read the latter, so a
   run started on one device resumes on two and the other way round.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning import pytorch as pl
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.strategies import ModelParallelStrategy
from omegaconf import DictConfig

from alexnet_lit.config import ConfigError
from alexnet_lit.models.towers import TOWERS


class TowerParallelStrategy(ModelParallelStrategy):
    def __init__(self, process_group_backend: str | None = None, **kwargs: Any) -> None:
        super().__init__(tensor_parallel_size=TOWERS, save_distributed_checkpoint=False,
                         process_group_backend=process_group_backend, **kwargs)

    def setup_environment(self) -> None:
        world = self.num_nodes * self.num_processes
        check_towers(self.lightning_module.net.towers.value if self.lightning_module else "two", world)
        self._data_parallel_size = world // TOWERS
        super().setup_environment()

    def optimizer_state(self, optimizer) -> dict[str, Any]:
        """The whole optimizer state on rank 0 (empty elsewhere), numbered as ``optimizer.state_dict()`` does."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        optimizer = optimizer._optimizer if isinstance(optimizer, LightningOptimizer) else optimizer
        full = get_optimizer_state_dict(self.model, optimizer,
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if not full:
            return {}
        ids = {name: i for i, name in enumerate(n for g in full["param_groups"] for n in g["params"])}
        groups = [{**g, "params": [ids[n] for n in g["params"]]} for g in full["param_groups"]]
        return {"state": {ids[n]: s for n, s in full["state"].items()}, "param_groups": groups}

    def load_checkpoint(self, checkpoint_path, weights_only: bool | None = None) -> dict[str, Any]:
        """A single-file checkpoint of either layout source (one device or two): the weights are split into this
        rank's shards, the optimizer state is renumbered by parameter name and split alike."""
        from lightning.fabric.strategies.model_parallel import _load_raw_module_state
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        path = Path(self.broadcast(checkpoint_path))
        if path.is_dir():
            return super().load_checkpoint(path, weights_only)
        checkpoint = torch.load(path, mmap=True, map_location="cpu", weights_only=weights_only)
        # contiguous: torch 2.14 splits a channels_last tensor (a one-device model.channels_last=true checkpoint)
        # into wrong shards on every rank but the first (measured: conv2..conv5 off by up to 0.86 on rank 1)
        weights = {k: v.contiguous() for k, v in checkpoint.pop("state_dict").items()}
        _load_raw_module_state(weights, self.model, strict=self.lightning_module.strict_loading)
        names = {p: n for n, p in self.model.named_parameters()}
        for optimizer, state in zip(self.optimizers, checkpoint.get("optimizer_states", [])):
            order = [names[p] for g in optimizer.param_groups for p in g["params"]]
            groups = [{**g, "params": [order[i] for i in g["params"]]} for g in state["param_groups"]]
            tensors = {order[i]: {k: v.contiguous() if isinstance(v, torch.Tensor) else v for k, v in s.items()}
                       for i, s in state["state"].items()}
            by_name = {"state": tensors, "param_groups": groups}
            set_optimizer_state_dict(self.model, optimizer, optim_state_dict=by_name,
                                     options=StateDictOptions(full_state_dict=True))
        checkpoint.pop("optimizer_states", None)
        return checkpoint


def check_towers(towers: str, world: int, compiled: bool = False) -> None:
    """The tower strategy's rule, the one place it is written: the two-tower net, 2 processes per tower pair, not
    compiled (its forward runs explicit collectives on local shards, which no test compiles: refused rather than
    untested). Checked before any work (checks.py, on the config) and again by the strategy and the module."""
    if compiled:
        raise ConfigError("model.compile=true is not supported with trainer=towers (the towers' collectives run "
                          "eagerly); use model.compile=false, or trainer=gpu / ddp for a compiled one-device net")
    if towers != "two":
        raise ConfigError(f"trainer=towers puts the paper's two towers on two devices: it needs model.towers=two, "
                          f"not model.towers={towers} (the one-tower nets run on trainer=cpu, gpu or ddp)")
    if world % TOWERS:
        raise ConfigError(f"trainer=towers needs 2 processes per tower pair (2 x N for N data-parallel pairs): "
                          f"trainer.devices x trainer.num_nodes = {world} is odd")


def is_towers(trainer: pl.Trainer | None) -> bool:
    return isinstance(getattr(trainer, "strategy", None), TowerParallelStrategy)


def is_towers_config(trainer: DictConfig) -> bool:
    """Whether a Trainer config runs the tower strategy (trainer=towers, towers_cpu)."""
    strategy = trainer.get("strategy")
    return isinstance(strategy, DictConfig) and str(strategy.get("_target_", "")).endswith(".TowerParallelStrategy")


def world_size(trainer: DictConfig) -> int:
    """Processes a Trainer config will start (devices x nodes), without starting anything."""
    devices = trainer.devices
    if isinstance(devices, str) and devices.lstrip("-").isdigit():
        devices = int(devices)
    if not isinstance(devices, int):
        n = len(devices) if not isinstance(devices, str) else None
    else:
        n = devices if devices > 0 else None
    if n is None:  # "auto" or -1: every GPU when the accelerator takes GPUs, else one CPU process
        gpu = trainer.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
        n = torch.cuda.device_count() if gpu else 1
    return n * int(trainer.num_nodes or 1)


def replicas(trainer: DictConfig) -> int:
    """Data-parallel replicas a Trainer config will run: processes, or tower pairs under trainer=towers."""
    return world_size(trainer) // TOWERS if is_towers_config(trainer) else world_size(trainer)


def replica(trainer: pl.Trainer | None) -> tuple[int, int]:
    """(data-parallel rank, number of replicas): the global rank and world size, except that under the tower
    strategy the two ranks of a pair are one replica (they see the same images and draw the same dropout masks)."""
    if trainer is None:
        return 0, 1
    if is_towers(trainer):
        return trainer.global_rank // TOWERS, max(1, trainer.world_size // TOWERS)
    return trainer.global_rank, trainer.world_size


def data_parallel_group(trainer: pl.Trainer | None):
    """The process group over which metrics and logged values are reduced: the replicas (None: every rank)."""
    if not is_towers(trainer) or trainer.strategy._device_mesh is None:
        return None
    return trainer.strategy.device_mesh["data_parallel"].get_group()
