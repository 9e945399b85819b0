"""Weights & Biases, offline unless a key is set, grouped so that W&B compares ablations.

    python train.py +experiment=no_lrn            # offline run in <output_dir>/wandb; sync later with `wandb sync`
    WANDB_API_KEY=... python train.py ...         # online
    wandb leet <output_dir>/wandb                 # local terminal dashboard of the offline run

Group: the experiment name plus the overrides that change the recipe (not seeds, paths, trainer or logger keys),
so repeats of one ablation with different seeds land in one W&B group; W&B allows 128 characters, so a longer
group keeps its first 119 and replaces the rest by a hash of all of it (two sweeps that differ late never share a
group). Tags: the experiment and every override. Error metrics get min summaries, so W&B's run table shows the
best epoch, not the last one.

Online with a key but no network (a cluster node without internet), W&B would wait and then fail the run; we
wait ``init_timeout`` seconds (logger.wandb.init_timeout), warn once, and continue offline. W&B's own banner and
footer are silenced (``silent``); at the end the run folder and the sync command are printed once.
"""

from __future__ import annotations

import hashlib
import os
import sys
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


def group_name(experiment_name: str, recipe: list[str], limit: int = 128) -> str:
    group = "/".join([experiment_name, *sorted(recipe)])
    if len(group) <= limit:
        return group
    digest = hashlib.sha1(group.encode()).hexdigest()[:8]
    return f"{group[: limit - 9]}~{digest}"


def _make(offline: bool, init_timeout: float, **kwargs: Any) -> WandbLogger:
    import wandb

    # the mode goes into the settings too: wandb.Settings reads WANDB_MODE when it is made, before Lightning sets it
    mode = {"mode": "offline"} if offline else {}
    settings = wandb.Settings(silent=True, init_timeout=init_timeout, **mode)
    logger = WandbLogger(offline=offline, settings=settings, **kwargs)
    logger._wandb_init.pop("anonymous", None)  # Lightning always passes it; wandb 0.31 warns that it has no effect
    return logger


def wandb_logger(project: str, experiment_name: str, save_dir: str, seed: int | None = None,
                 tags: list[str] | tuple[str, ...] = (), offline: bool | None = None, init_timeout: float = 30.0,
                 **kwargs: Any) -> WandbLogger:
    overrides = command_line_overrides()
    recipe = [o.lstrip("+~") for o in overrides if not o.lstrip("+~").startswith(_NOT_RECIPE)]
    group = group_name(experiment_name, recipe)
    all_tags = list(dict.fromkeys([experiment_name, *tags, *overrides]))
    offline = should_run_offline() if offline is None else offline
    os.makedirs(save_dir, exist_ok=True)
    args = dict(project=project, group=group, name=f"{group}/seed{seed}" if seed is not None else group,
                tags=[t[:64] for t in all_tags], save_dir=save_dir, **kwargs)
    logger = _make(offline, init_timeout, **args)
    try:
        experiment = logger.experiment  # wandb.init: the network, online
    except Exception as e:  # wandb raises its own CommError / UsageError kinds; none may end the run
        if offline:
            raise
        print(f"warning: W&B could not start online within {init_timeout:g} s ({str(e).splitlines()[0][:120]}); "
              f"continuing offline: sync the run later with `wandb sync`", file=sys.stderr)
        logger = _make(True, init_timeout, **args)
        experiment = logger.experiment
    for name in MIN_METRICS:
        experiment.define_metric(name, summary="min")
    return logger


def finish(loggers: list[Any], failed: bool = False) -> None:
    """Close W&B runs (a Hydra sweep runs its jobs in one process: each needs its own run), a failed run with a
    non-zero exit code (W&B then shows it as failed, never finished), and, offline, say once where the files are
    and how to sync them."""
    for lg in loggers:
        if not isinstance(lg, WandbLogger) or lg._experiment is None:
            continue
        run_dir = os.path.dirname(lg.experiment.dir.rstrip("/"))
        lg.experiment.finish(exit_code=1 if failed else 0)
        if getattr(lg, "_offline", False):
            print(f"W&B ran offline. Run files: {run_dir}\n"
                  f"  sync later:  wandb sync {run_dir}\n  look now:    wandb leet {run_dir}")
