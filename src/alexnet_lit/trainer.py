"""The Trainer every entry point and benchmark builds (train.py, alexnet-eval, experiments/bench_train.py): the
``trainer`` group instantiated with what an exact, safe run needs whatever the config says.

    python train.py trainer=gpu trainer.devices=8        # conf/trainer/*.yaml: the Trainer's own arguments
"""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning import pytorch as pl
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from alexnet_lit.callbacks import StepSeed, StopSafely
from alexnet_lit.callbacks.step_checkpoint import StepCheckpoint
from alexnet_lit.checkpoint import AtomicCheckpointIO, QueuedCheckpointIO
from alexnet_lit.config import ConfigError
from alexnet_lit.metrics import MONITOR


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a name -> {_target_: ...} group; a null entry is switched off."""
    return [instantiate(node) for node in (group or {}).values() if node is not None]


def best_checkpoint(trainer: pl.Trainer) -> ModelCheckpoint | None:
    """The checkpoint callback that keeps the best MONITOR (not merely the first one configured)."""
    found = [c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint) and c.monitor == MONITOR]
    return found[0] if found else None


def make_trainer(cfg: DictConfig, callbacks: list[Any], run_dir: str | None = None) -> pl.Trainer:
    """The Trainer of ``cfg.trainer``, without loggers (they start a W&B run: only once everything checks out).
    Lightning's own checks on its arguments (accumulate_grad_batches=0, ...) become one-line errors.

    Also: checkpoints written atomically in their own folder (checkpoint.AtomicCheckpointIO), off the training
    thread unless ``checkpoint_async=false`` (checkpoint.QueuedCheckpointIO); the run folder as
    ``default_root_dir`` (nothing lands in the launch folder); and one owner of the signals: ours
    (signals.py, callbacks/stop.py). Lightning's SLURM handler would checkpoint inside the signal handler, at any
    point of a step (not exactly resumable), and its SIGTERM handler broadcasts from inside the handler, which
    deadlocks when the ranks are elsewhere; so its registration is switched off and SLURM's auto-requeue too."""
    plugins: list[Any] = [QueuedCheckpointIO(AtomicCheckpointIO()) if cfg.get("checkpoint_async", True)
                          else AtomicCheckpointIO()]
    if SLURMEnvironment.detect():
        plugins.append(SLURMEnvironment(auto_requeue=False))
    extra = {"default_root_dir": cfg.trainer.get("default_root_dir") or run_dir}
    try:
        trainer = instantiate(cfg.trainer, logger=False, callbacks=callbacks, plugins=plugins, **extra)
    except InstantiationException as e:
        cause = e.__cause__ or e
        raise ConfigError(f"trainer: {str(cause).splitlines()[0]}") from None
    except (MisconfigurationException, ValueError, TypeError) as e:
        raise ConfigError(f"trainer: {str(e).splitlines()[0]}") from None
    trainer._signal_connector.register_signal_handlers = lambda: None  # see above: ours stay in place
    return trainer


def extra_callbacks(cfg: DictConfig, seed: int, checkpoints: str) -> list[Any]:
    """What an exact, safe run needs whatever the callbacks group says: per-step dropout seeds, the safe stop,
    and the step checkpoint (``checkpoint_every_n_steps``, else ``checkpoint_every_minutes``)."""
    out: list[Any] = [StepSeed(seed), StopSafely(checkpoints)]
    steps, minutes = cfg.get("checkpoint_every_n_steps"), cfg.get("checkpoint_every_minutes")
    if steps or minutes:
        out.append(StepCheckpoint(checkpoints, every_n_steps=steps, every_minutes=minutes))
    return out
