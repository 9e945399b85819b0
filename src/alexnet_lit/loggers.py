"""Weights & Biases, offline unless a key is set, grouped so that W&B compares ablations.

    python train.py +experiment=no_lrn            # offline run in <output_dir>/wandb; sync later with `wandb sync`
    WANDB_API_KEY=... python train.py ...         # online
    wandb leet <output_dir>/wandb                 # local terminal dashboard of the offline run

Group: the experiment name plus the overrides that change the recipe (not seeds, paths, trainer or logger keys),
so repeats of one ablation with different seeds land in one W&B group; W&B allows 128 characters, so a longer
group keeps its first 119 and replaces the rest by a hash of all of it (two sweeps that differ late never share a
group). In a sweep (-m) the group is the sweep folder's name, shared by all its jobs (alexnet-report --wandb
reports that group), and the ablation's name is the job type. Tags: the experiment and every override. Error
metrics get min summaries, so W&B's run table shows the best epoch, not the last one.

A run folder keeps its W&B run: the id is written to ``<run folder>/wandb/run_id`` on the first start and used
again (``resume="allow"``, as W&B recommends) when the run resumes or is requeued, so a resume continues the same
W&B run instead of starting a second one. Steps between the last checkpoint and a kill are logged again; Lightning
plots every metric against ``trainer/global_step``, so they land on the same x values (offline, each start has
its own folder under wandb/, with the same id: `wandb sync` them all).

Online with a key but no network (a cluster node without internet), W&B would wait and then fail the run; we
wait ``init_timeout`` seconds (logger.wandb.init_timeout), warn once, and continue offline. W&B's own banner and
footer are silenced (``silent``); at the end the run folder and the sync command are printed once.
"""

from __future__ import annotations

import csv
import hashlib
import os
import secrets
import string
import sys
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from alexnet_lit.metrics import ERRORS, logged

MIN_METRICS = (*ERRORS, logged("val", "loss"))
_NOT_RECIPE = ("seed=", "trainer.", "paths.", "logger", "callbacks", "hydra", "data.num_workers", "ckpt_path", "run_id",
               "checkpoint_every_n_steps", "data.timeout", "out=", "sweep=",
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


def sweep_name() -> str | None:
    """In a sweep (-m), the sweep folder's name (logs/multiruns/<name>): the W&B group of all its jobs."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        return Path(hc.runtime.output_dir).parent.name if hc.mode == RunMode.MULTIRUN else None
    except (ImportError, ValueError):
        return None


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
    ablation = group_name(experiment_name, recipe)
    sweep = sweep_name()
    all_tags = list(dict.fromkeys([experiment_name, *tags, *overrides]))
    offline = should_run_offline() if offline is None else offline
    os.makedirs(save_dir, exist_ok=True)
    args = dict(project=project, group=sweep or ablation, job_type=ablation[:64] if sweep else None,
                name=f"{ablation}/seed{seed}" if seed is not None else ablation,
                tags=[t[:64] for t in all_tags], save_dir=save_dir, id=run_id(save_dir), resume="allow", **kwargs)
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


def run_id(save_dir: str) -> str | None:
    """The W&B id of this run folder: made on the first start, read back on a resume (rank 0 only: the others
    log nothing and must not race it)."""
    path = Path(save_dir) / "wandb" / "run_id"
    if path.is_file():
        return path.read_text().strip() or None
    if rank_zero_only.rank != 0:
        return None
    new = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))  # W&B's own id form
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new + "\n")
    return new


def continue_csv(loggers: list[Any], step: int) -> None:
    """A resume from global step ``step`` continues the run's CSV: rows of the steps after the checkpoint are
    dropped (they are trained and logged again), the rest stays. Lightning's CSV writer deletes an existing
    metrics.csv when it is made, so the rows are read first and written back, and the writer learns the columns
    (else its first save, seeing "new" columns, would rewrite the file with only those)."""
    from lightning.pytorch.loggers import CSVLogger

    for lg in loggers:
        if not isinstance(lg, CSVLogger):
            continue
        path = Path(lg.log_dir) / "metrics.csv"
        drop_rows_after(path, step)
        kept = path.read_bytes() if path.is_file() else None
        writer = lg.experiment  # deletes metrics.csv
        if kept:
            path.write_bytes(kept)
            writer.metrics_keys = sorted(next(csv.reader(kept.decode().splitlines()), []))


def drop_rows_after(metrics_csv: str | os.PathLike, step: int) -> int:
    """Remove the CSV rows of steps at or after global step ``step`` (Lightning logs a step's row with the
    global step before its update, so a checkpoint at step G holds the rows 0 .. G-1); returns how many."""
    path = Path(metrics_csv)
    if not path.is_file():
        return 0
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows or "step" not in rows[0]:
        return 0
    col = rows[0].index("step")
    keep = [rows[0]] + [r for r in rows[1:] if not (r[col] and float(r[col]) >= step)]
    if len(keep) < len(rows):
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", newline="") as f:
            csv.writer(f).writerows(keep)  # "\r\n" rows, as Lightning's CSVLogger writes them
        os.replace(tmp, path)
    return len(rows) - len(keep)


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
