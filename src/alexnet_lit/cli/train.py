"""Train, then test the best checkpoint.

    python train.py                                   # conf/train.yaml as composed (alias: alexnet-train)
    python train.py +experiment=quickstart            # embedded data, a few minutes on 2 CPU cores
    python train.py +experiment=no_lrn data.root=/data/imagenet-256
    python train.py -m +experiment=paper,no_lrn,tanh  # a sweep, one output folder per run
    python train.py +experiment=paper +debug=tiny     # the same code path, tiny and fast (debug=fdr: one batch)
    python train.py ckpt_path=logs/.../checkpoints/last.ckpt   # resume

Steps: 1. compose and check the config (nothing is read before it passes); 2. seed; 3. instantiate the model,
data, loggers, callbacks and trainer; 4. fit; 5. test the checkpoint that was best by val/top1_err on 1 and 10
crops; 6. return the best val/top1_err to Hydra (sweepers that optimise read it).
"""

from __future__ import annotations

import os
from typing import Any

import hydra
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning import pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig

from alexnet_lit import loggers as wandb_runs
from alexnet_lit.cli import check_train, config_dir, exit_on_user_error, hydra_entry_point, preflight_train
from alexnet_lit.config import ConfigError, Source, plain
from alexnet_lit.data import AlexNetDataModule
from alexnet_lit.module import AlexNetModule

MONITOR = "val/top1_err"


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a name -> {_target_: ...} group; a null entry is switched off."""
    return [instantiate(node) for node in (group or {}).values() if node is not None]


def best_checkpoint(trainer: pl.Trainer) -> ModelCheckpoint | None:
    """The checkpoint callback that keeps the best val/top1_err (not merely the first one configured)."""
    found = [c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint) and c.monitor == MONITOR]
    return found[0] if found else None


def make_trainer(cfg: DictConfig, callbacks: list[Any]) -> pl.Trainer:
    """The Trainer of ``cfg.trainer``, without loggers (they start a W&B run: only once everything checks out).
    Lightning's own checks on its arguments (accumulate_grad_batches=0, ...) become one-line errors."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        return instantiate(cfg.trainer, logger=False, callbacks=callbacks)
    except InstantiationException as e:
        cause = e.__cause__ or e
        raise ConfigError(f"trainer: {str(cause).splitlines()[0]}") from None
    except (MisconfigurationException, ValueError, TypeError) as e:
        raise ConfigError(f"trainer: {str(e).splitlines()[0]}") from None


def run(cfg: DictConfig) -> dict[str, float]:
    check_train(cfg)
    if cfg.seed is not None:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
    container = plain(cfg)
    model = AlexNetModule(**container["model"])
    datamodule = AlexNetDataModule(**container["data"])
    callbacks = instantiate_all(cfg.callbacks)
    trainer = make_trainer(cfg, callbacks)
    if datamodule.source not in (Source.generated, Source.archives):  # those make their files in prepare_data
        datamodule.check_training_images(trainer.world_size)
    loggers = instantiate_all(cfg.logger)  # last: a W&B run starts here
    trainer.loggers = loggers
    for lg in loggers:
        lg.log_hyperparams(container)
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        best = best_checkpoint(trainer)
        if best is not None and best.best_model_score is not None:
            metrics[f"best/{MONITOR}"] = float(best.best_model_score)
            last = f", last epoch {metrics[MONITOR]:.4f}" if MONITOR in metrics else ""
            rank_zero_info(f"best {MONITOR} {metrics[f'best/{MONITOR}']:.4f} "
                           f"({os.path.basename(best.best_model_path)}, tested below){last}")
        if cfg.test and not trainer.interrupted:
            path = best.best_model_path if best is not None else ""
            for result in trainer.test(model, datamodule=datamodule, ckpt_path=path or None, weights_only=True):
                metrics.update({k: float(v) for k, v in result.items()})
    except BaseException:
        wandb_runs.finish(loggers, failed=True)
        raise
    wandb_runs.finish(loggers, failed=trainer.interrupted)
    return metrics


def sweeper_value(metrics: dict[str, float] | None) -> float:
    """What Hydra sweepers that optimise receive: the run's best val/top1_err (never the last epoch's, never
    None); NaN when nothing was validated or the job failed."""
    return (metrics or {}).get(f"best/{MONITOR}", float("nan"))


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def _hydra_main(cfg: DictConfig) -> float:
    return sweeper_value(exit_on_user_error(run, cfg))


def main() -> None:
    hydra_entry_point(_hydra_main, "train", preflight_train)


if __name__ == "__main__":
    main()
