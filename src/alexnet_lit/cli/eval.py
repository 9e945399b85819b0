"""Evaluate a checkpoint on the centre crop and the 10-crop view (paper section 4.1), without training.

    alexnet-eval ckpt_path=logs/paper/runs/<time>/checkpoints/best-epoch042.ckpt data.root=/data/imagenet-256
    alexnet-eval ckpt_path=... data=imagenet data.root=/data/imagenet      # the raw validation folders
    alexnet-eval ckpt_path=... +experiment=paper data.ten_crop=false
    alexnet-eval ckpt_path=... out=results/paper-s0.json     # the JSON result (default: <checkpoint>.eval.json)

Prints a table (centre crop and 10 crops: top-1 / top-5 error and the images counted) and writes it as JSON.

A ``data.root`` that is a store made by alexnet-prepare is read as one (data=imagenet_prepared) unless the command
line picks another data group; only the validation split is read.

The network is rebuilt from the checkpoint's own hyperparameters (so model.* overrides do not apply), and the
input is prepared by the checkpoint's input contract: crop and resize size, pixel_max, the normalization and its
statistics (the mean image travels in the checkpoint, so no data.stats_path is needed). A data key given on the
command line that contradicts the contract is an error naming both values. The data source, trainer and logger
groups come from the composed config, as for train.py. Loads with weights_only=True.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig

from alexnet_lit.checkpoint import read as read_checkpoint
from alexnet_lit.checks import check
from alexnet_lit.config import ConfigError, Source, plain
from alexnet_lit.data import AlexNetDataModule
from alexnet_lit.data.contract import DATA_KEYS, InputContract
from alexnet_lit.data.sources import check_source
from alexnet_lit.data.store import load_stats
from alexnet_lit.entry import config_dir, exit_on_user_error, hydra_entry_point
from alexnet_lit.inference import restore
from alexnet_lit.loggers import command_line_overrides, finish
from alexnet_lit.metrics import TOP1, TOP5, VIEWS, logged
from alexnet_lit.trainer import instantiate_all, make_trainer


def explicit_data_keys() -> set[str]:
    """data.* keys the user gave on the command line (not those an experiment or group file set)."""
    keys = {o.lstrip("+~").split("=", 1)[0] for o in command_line_overrides()}
    return {k[len("data."):] for k in keys if k.startswith("data.")}


def apply_contract(cfg: DictConfig, contract: InputContract | None, ckpt: str, explicit: set[str]) -> dict | None:
    """Prepare inputs as the checkpoint's network was trained on: its contract's values replace the composed
    data keys (an explicit command-line value that differs is an error); returns the statistics it carries."""
    if contract is None:  # a checkpoint from before input contracts: the composed config decides
        return None
    data, saved = cfg.data, contract.as_dict()
    for name in DATA_KEYS:
        given = plain(data)[name]
        if name in explicit and given != saved[name]:
            raise ConfigError(f"data.{name}={given} contradicts {ckpt}, trained with data.{name}={saved[name]}: "
                              f"drop the override (the checkpoint's input contract is used by default)")
        data[name] = saved[name]
    data.lighting.enabled = False  # training-only augmentation
    if contract.mean_image is None:
        return None
    if "stats_path" in explicit and data.stats_path:
        given = torch.as_tensor(load_stats(data.stats_path)["mean_image"], dtype=torch.float32)
        if given.shape != contract.mean_image.shape or not torch.allclose(given, contract.mean_image.float(),
                                                                          atol=1e-3):
            raise ConfigError(f"data.stats_path={data.stats_path} holds a different mean image than {ckpt} was "
                              f"trained with: drop data.stats_path (the checkpoint carries its own)")
    data.stats_path = None
    return contract.stats()


def explicit_data_group() -> bool:
    """Whether the command line picks the data group (data=...): otherwise a store in data.root is read as one."""
    return any(o.lstrip("+").startswith("data=") for o in command_line_overrides())


def prepare_eval(cfg: DictConfig, explicit: set[str] | None = None,
                 data_group_given: bool | None = None) -> tuple[dict[str, Any], dict | None]:
    """Everything before any work: the checkpoint (readable, safe), its input contract applied to the data config,
    the config checks and the evaluation data's files. Returns (checkpoint, the statistics it carries)."""
    if not cfg.ckpt_path:
        raise ConfigError("ckpt_path is not set: alexnet-eval ckpt_path=/path/to/checkpoint.ckpt")
    state = read_checkpoint(cfg.ckpt_path)
    explicit = explicit_data_keys() if explicit is None else explicit
    data_group_given = explicit_data_group() if data_group_given is None else data_group_given
    root = cfg.data.root
    if not data_group_given and root and (Path(root).expanduser() / "manifest.json").is_file():
        cfg.data.source = Source.prepared  # data.root is a store made by alexnet-prepare: read it as one
    stats = apply_contract(cfg, InputContract.of(state), cfg.ckpt_path, explicit)
    check(cfg, stats_given=stats is not None)
    check_source(cfg.data, splits=("val",))
    if state["hyper_parameters"].get("num_classes") != cfg.data.num_classes:
        raise ConfigError(f"{cfg.ckpt_path} has {state['hyper_parameters'].get('num_classes')} classes but "
                          f"data.num_classes={cfg.data.num_classes}: evaluate it on the data it was trained for")
    return state, stats


def evaluate(cfg: DictConfig, explicit: set[str] | None = None) -> dict[str, float]:
    """``explicit``: the data keys the user gave (default: those on the Hydra command line)."""
    state, stats = prepare_eval(cfg, explicit)
    model = restore(state)
    datamodule = AlexNetDataModule(stats=stats, **plain(cfg.data))
    trainer = make_trainer(cfg, callbacks=[])
    loggers = instantiate_all(cfg.logger)
    trainer.loggers = loggers
    try:
        results = trainer.test(model, datamodule=datamodule)
    except BaseException:
        finish(loggers, failed=True)
        raise
    finish(loggers)
    metrics = {k: float(v) for r in results for k, v in r.items()}
    write_result(cfg, metrics, state)
    return metrics


def result_table(metrics: dict[str, float]) -> str:
    """1-crop and 10-crop top-1 / top-5 error (%) and the images each counted."""
    lines = [f"{'view':<12} {'top-1 err':>10} {'top-5 err':>10} {'images':>8}"]
    for name, view in VIEWS.items():
        if logged("test", TOP1, view) not in metrics:
            continue
        top5 = metrics.get(logged("test", TOP5, view))
        lines.append(f"{name:<12} {100 * metrics[logged('test', TOP1, view)]:>9.2f}% "
                     + (f"{100 * top5:>9.2f}% " if top5 is not None else f"{'-':>10} ")
                     + f"{int(metrics.get(logged('test', 'images', view), 0)):>8,}")
    return "\n".join(lines)


def write_result(cfg: DictConfig, metrics: dict[str, float], state: dict[str, Any]) -> Path:
    """The table on stdout and the JSON file: every number, the checkpoint, its step and the data it read."""
    path = Path(cfg.out) if cfg.get("out") else Path(str(cfg.ckpt_path)).expanduser().with_suffix(".eval.json")
    views = {}
    for name, view in zip(("centre_crop", "ten_crop"), VIEWS.values()):
        if logged("test", TOP1, view) in metrics:
            views[name] = {name_: metrics.get(logged("test", name_, view)) for name_ in (TOP1, TOP5, "loss")}
            views[name]["images"] = int(metrics.get(logged("test", "images", view), 0))
    record = {"ckpt_path": str(cfg.ckpt_path), "epoch": state.get("epoch"), "global_step": state.get("global_step"),
              "split": "val",  # every source's held-out split (ILSVRC-2012 val, CIFAR-10 test): sources.py
              "data": {"source": str(cfg.data.source), "root": cfg.data.root}, **views}
    print(result_table(metrics))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))
    print(f"wrote {path}")
    return path


def preflight_check(cfg: DictConfig) -> None:
    prepare_eval(cfg)


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def _hydra_main(cfg: DictConfig) -> None:
    exit_on_user_error(evaluate, cfg)


def main() -> None:
    sys.argv += ["experiment_name=eval"] if not any(a.startswith("experiment_name=") for a in sys.argv) else []
    hydra_entry_point(_hydra_main, "train", preflight_check)


if __name__ == "__main__":
    main()
