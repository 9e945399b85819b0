"""Folders a run writes to: checked by a real probe before any work (paths.log_dir, data.cache_dir); the run folder
a run (and its resume, its requeue) writes to.

    python train.py run_id=baseline                       # logs/<experiment_name>/runs/baseline/
    python train.py run_id=baseline ckpt_path=last        # the same folder, resumed from its newest checkpoint
    python train.py ckpt_path=logs/paper/runs/X/checkpoints/step.ckpt   # resumes in logs/paper/runs/X/

A real probe, not ``os.access``: root passes access checks even where the file system refuses writes (a
read-only mount), and jobs on clusters often run as root in containers.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import time
from pathlib import Path

from omegaconf import OmegaConf

from alexnet_lit.config import ConfigError


def slurm_run_id() -> str | None:
    """slurm-<job> (slurm-<array job>_<task> in an array): a requeued job keeps its id, so it finds its folder."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"slurm-{array}_{task}"
    job = os.environ.get("SLURM_JOB_ID")
    return f"slurm-{job}" if job else None


@functools.cache
def start_time() -> str:  # once per process: preflight and Hydra resolve the run folder separately
    return time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime()) + f"_{time.time_ns() // 1000 % 10**6:06d}"


def run_folder(base: str, run_id: str | None, ckpt_path: str | None) -> str:
    """``base/run_id``; else the folder of the checkpoint being resumed (``.../X/checkpoints/f.ckpt`` -> ``X``);
    else ``base/slurm-<job>`` in a SLURM job; else ``base/<start time>``."""
    if run_id:
        return f"{base}/{run_id}"
    if ckpt_path and ckpt_path != "last":
        p = Path(ckpt_path).expanduser()
        if p.is_file() and p.parent.name == "checkpoints":
            return str(p.absolute().parent.parent)
    return f"{base}/{slurm_run_id() or start_time()}"


SWEEP_STARTED = "ALEXNET_LIT_SWEEP_STARTED"  # set by the launching process for the jobs it starts


def sweep_folder(base: str, run_id: str | None) -> str:
    """``base/run_id``, else ``base/<the sweep's start time>``. A launcher that runs each job in a process of its
    own (submitit, locally or on SLURM) resolves the folder again in every job: the start time comes from the
    launching process's environment, so all jobs land in one folder (and a requeued job in the same one)."""
    return f"{base}/{run_id}" if run_id else f"{base}/{os.environ.get(SWEEP_STARTED) or start_time()}"


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("alexnet_run_folder", run_folder, replace=True)
    OmegaConf.register_new_resolver("alexnet_sweep_folder", sweep_folder, replace=True)


def check_writable(path: str | os.PathLike, key: str, need_bytes: int = 0) -> None:
    """``path`` (made later if absent) can take files and has ``need_bytes`` free; the probe leaves nothing."""
    p = Path(path).expanduser().absolute()
    existing = next(a for a in (p, *p.parents) if a.exists())
    if not existing.is_dir():
        raise ConfigError(f"{key}={path}: {existing} is a file, not a folder; point it to a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".alexnet-lit-probe-", dir=existing))
    except OSError as e:
        raise ConfigError(f"{key}={path}: cannot write in {existing} ({e.strerror}); point it to a writable "
                          f"folder") from None
    free = shutil.disk_usage(existing).free
    if free < need_bytes:
        raise ConfigError(f"{key}={path}: {free / 2**20:,.0f} MiB free in {existing}, the run needs about "
                          f"{need_bytes / 2**20:,.0f} MiB for its checkpoints; free space or point it elsewhere")
