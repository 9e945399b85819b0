"""Train, then test the best checkpoint.

    python train.py                                   # conf/train.yaml as composed (alias: alexnet-train)
    python train.py experiment=quickstart             # embedded data, a few minutes on 2 CPU cores
    python train.py +experiment=no_lrn data.root=/data/imagenet
    python train.py -m +experiment=paper,no_lrn,tanh  # a sweep, one output folder per run
    python train.py ckpt_path=logs/.../checkpoints/last.ckpt   # resume

Steps: 1. compose and validate the config (nothing is read before it passes); 2. seed; 3. instantiate the data,
model, loggers, callbacks and trainer; 4. fit; 5. test the best checkpoint (by val/top1_err) on 1 and 10 crops.
"""

from __future__ import annotations

from typing import Any

import hydra
from hydra.utils import instantiate
from lightning import pytorch as pl
from omegaconf import DictConfig

from alexnet_lit import loggers as wandb_runs
from alexnet_lit.cli import config_dir, exit_on_user_error, normalize_argv
from alexnet_lit.config import plain, validate
from alexnet_lit.data import AlexNetDataModule
from alexnet_lit.module import AlexNetModule


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a name -> {_target_: ...} group; a null entry is switched off."""
    return [instantiate(node) for node in (group or {}).values() if node is not None]


def run(cfg: DictConfig) -> dict[str, float]:
    validate(cfg)
    if cfg.seed is not None:
        pl.seed_everything(cfg.seed, workers=True)
    container = plain(cfg)
    datamodule = AlexNetDataModule(**container["data"])
    model = AlexNetModule(**container["model"])
    loggers = instantiate_all(cfg.logger)
    for lg in loggers:
        lg.log_hyperparams(container)
    callbacks = instantiate_all(cfg.callbacks)
    trainer: pl.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        if cfg.test and not trainer.interrupted:
            best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
            for result in trainer.test(model, datamodule=datamodule, ckpt_path=best or None, weights_only=True):
                metrics.update({k: float(v) for k, v in result.items()})
    finally:
        wandb_runs.finish(loggers)
    return metrics


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    metrics = exit_on_user_error(run, cfg)
    return metrics.get("val/top1_err")  # for Hydra sweepers that optimise


def main() -> None:
    normalize_argv()
    _hydra_main()


if __name__ == "__main__":
    main()
