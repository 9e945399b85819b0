"""Evaluate a checkpoint on the centre crop and the 10-crop view (paper section 4.1), without training.

    alexnet-eval ckpt_path=logs/paper/runs/<time>/checkpoints/best-epoch042.ckpt data.root=/data/imagenet-256
    alexnet-eval ckpt_path=... +experiment=paper data.ten_crop=false

The network is rebuilt from the checkpoint's own hyperparameters (so model.* overrides do not apply); the data,
trainer and logger groups come from the composed config, as for train.py. Loads with weights_only=True.
"""

from __future__ import annotations

import sys

import hydra
import torch
from omegaconf import DictConfig

from alexnet_lit.cli import config_dir, exit_on_user_error, normalize_argv
from alexnet_lit.cli.train import instantiate_all
from alexnet_lit.config import ConfigError, plain, validate
from alexnet_lit.data import AlexNetDataModule
from alexnet_lit.loggers import finish
from alexnet_lit.module import AlexNetModule


def evaluate(cfg: DictConfig) -> dict[str, float]:
    if not cfg.ckpt_path:
        raise ConfigError("ckpt_path is not set: alexnet-eval ckpt_path=/path/to/checkpoint.ckpt")
    validate(cfg)
    state = torch.load(cfg.ckpt_path, map_location="cpu", weights_only=True)
    model = AlexNetModule(**state["hyper_parameters"])
    model.load_state_dict(state["state_dict"])
    container = plain(cfg)
    if model.num_classes != container["data"]["num_classes"]:
        raise ConfigError(f"{cfg.ckpt_path} has {model.num_classes} classes but data.num_classes="
                          f"{container['data']['num_classes']}: evaluate it on the data it was trained for")
    datamodule = AlexNetDataModule(**container["data"])
    loggers = instantiate_all(cfg.logger)
    trainer = hydra.utils.instantiate(cfg.trainer, logger=loggers or False, callbacks=[])
    try:
        results = trainer.test(model, datamodule=datamodule)
    finally:
        finish(loggers)
    return {k: float(v) for r in results for k, v in r.items()}


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def _hydra_main(cfg: DictConfig) -> None:
    exit_on_user_error(evaluate, cfg)


def main() -> None:
    normalize_argv()
    sys.argv += ["experiment_name=eval"] if not any(a.startswith("experiment_name=") for a in sys.argv) else []
    _hydra_main()


if __name__ == "__main__":
    main()
