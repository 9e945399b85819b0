"""The checks an entry point runs before any work, on the composed config: every key across groups, the network's
geometry, the tower rule, the files and folders the run reads and writes, the checkpoint it resumes.

    alexnet-describe +experiment=paper data.root=/wrong     # the same checks as train.py, then the layer table

A failed check is a ConfigError (or MissingData, ...): one ``error:`` line and exit 2 (entry.py).
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig

from alexnet_lit import models
from alexnet_lit.callbacks.progress import check_style
from alexnet_lit.checkpoint import check_resume, newest, resume_path
from alexnet_lit.config import ConfigError, ModelConfig, NetConfig, Source, build, plain, validate
from alexnet_lit.data import AlexNetDataModule
from alexnet_lit.data.sources import check_source
from alexnet_lit.parallel import check_towers, is_towers_config, replicas, world_size
from alexnet_lit.paths import check_writable


def check(cfg: DictConfig, stats_given: bool = False) -> None:
    """Every config check, in its one place: keys across groups (config.validate), the network's geometry
    (models.check) and, on trainer=towers, the tower rule (parallel.check_towers). Entry points call this first."""
    validate(cfg, stats_given)
    model = build(ModelConfig, plain(cfg.model), "model")
    models.check(model)
    if "trainer" in cfg and is_towers_config(cfg.trainer):
        check_towers(model.towers.value, world_size(cfg.trainer), model.compile)
    progress = (cfg.get("callbacks") or {}).get("progress")
    if progress is not None and progress.get("style") is not None:
        check_style(progress.style)


def checkpoint_bytes(cfg: DictConfig) -> int:
    """About what one checkpoint of this network takes: fp32 weights and one momentum buffer each."""
    net_keys = {k: v for k, v in plain(cfg.model).items() if k in NetConfig.__dataclass_fields__}
    with torch.device("meta"):
        params = sum(p.numel() for p in models.build(build(NetConfig, net_keys, "model")).parameters())
    return params * 4 * 2


def check_train(cfg: DictConfig) -> tuple[str | None, dict | None]:
    """Everything train.py checks before it starts: the config, its files and folders, the checkpoint. Returns
    the checkpoint to resume (``ckpt_path`` resolved: ``last``, a requeued SLURM job) and its contents, or Nones."""
    check(cfg)
    check_source(cfg.data, splits=("train", "val"))
    # best, last, step, interrupted and a temporary copy while one is written, plus a margin for logs
    check_writable(cfg.paths.output_dir, "paths.output_dir (the run folder, in paths.log_dir)",
                   5 * checkpoint_bytes(cfg) + 64 * 2**20)
    if path := resume_path(cfg.ckpt_path, cfg.paths.output_dir):
        return path, check_resume(path, cfg.model, cfg.seed)
    if found := newest(Path(cfg.paths.output_dir) / "checkpoints"):  # a fresh start would overwrite a run
        raise ConfigError(f"the run folder {cfg.paths.output_dir} already holds {found}: resume it with "
                          f"ckpt_path=last, or start a new run with another run_id")
    return None, None


def preflight_train(cfg: DictConfig) -> None:
    """train.py's preflight: ``check_train``, then the data set listed (no image read) to find a missing class
    folder or fewer images than one batch per device before Hydra makes a run folder."""
    check_train(cfg)
    if cfg.data.source not in (Source.generated, Source.archives):  # those make their files in prepare_data
        AlexNetDataModule(**plain(cfg.data)).check_training_images(replicas(cfg.trainer))
