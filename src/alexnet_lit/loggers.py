"""Weights & Biases, offline unless a key is set, grouped so that W&B compares ablations.

    python train.py +experiment=no_lrn            # offline run in <output_dir>/wandb; sync later with `wandb sync`
    WANDB_API_KEY=... python train.py ...         # online
    wandb leet <output_dir>/wandb                 # local terminal dashboard of the offline run

Group: the experiment name plus the overrides that change the recipe (not seeds, paths, trainer or logger keys),
so repeats of one ablation with different seeds land in one W&B group. Tags: the experiment and every override.
Error metrics get min summaries, so W&B's run table shows the best epoch, not the last one.
"""

from __future__ import annotations

import os
from typing import Any

from lightning.pytorch.loggers import WandbLogger

MIN_METRICS = ("val/top1_err", "val/top5_err", "val/loss", "test/top1_err", "test/top5_err",
               "test/top1_err_10crop", "test/top5_err_10crop")
_NOT_RECIPE = ("seed=", "trainer.", "paths.", "logger", "callbacks", "hydra", "data.num_workers", "ckpt_path",
               "experiment=", "+experiment=", "test=", "tags=", "project=")


def should_run_offline() -> bool:
    """Offline unless the user gave a key (or asked for a mode): a run must never wait on the network."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"] in ("offline", "dryrun", "disabled")
    return not os.environ.get("WANDB_API_KEY")


def command_line_overrides() -> list[str]:
    try:
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().overrides.task)
    except (ImportError, ValueError):  # not under a Hydra app
        return []


def wandb_logger(project: str, experiment_name: str, save_dir: str, seed: int | None = None,
                 tags: list[str] | tuple[str, ...] = (), offline: bool | None = None, **kwargs: Any) -> WandbLogger:
    overrides = command_line_overrides()
    recipe = [o.lstrip("+~") for o in overrides if not o.lstrip("+~").startswith(_NOT_RECIPE)]
    group = "/".join([experiment_name, *sorted(recipe)])[:128]
    all_tags = list(dict.fromkeys([experiment_name, *tags, *overrides]))
    offline = should_run_offline() if offline is None else offline
    os.makedirs(save_dir, exist_ok=True)
    logger = WandbLogger(
        project=project,
        group=group,
        name=f"{group}/seed{seed}" if seed is not None else group,
        tags=[t[:64] for t in all_tags],
        save_dir=save_dir,
        offline=offline,
        **kwargs,
    )
    for name in MIN_METRICS:
        logger.experiment.define_metric(name, summary="min")
    return logger


def finish(loggers: list[Any]) -> None:
    """Close W&B runs (a Hydra sweep runs its jobs in one process: each needs its own run) and, offline, say
    where the files are and how to sync them."""
    for lg in loggers:
        if not isinstance(lg, WandbLogger) or lg._experiment is None:
            continue
        run_dir = os.path.dirname(lg.experiment.dir.rstrip("/"))
        lg.experiment.finish()
        if getattr(lg, "_offline", False):
            print(f"W&B ran offline (no WANDB_API_KEY). Run files: {run_dir}\n"
                  f"  sync later:  wandb sync {run_dir}\n  look now:    wandb leet {run_dir}")
