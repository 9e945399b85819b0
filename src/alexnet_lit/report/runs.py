"""Read runs back from their folders for alexnet-report: the composed config, the CSV and run.json, nothing else.

A run folder (``logs/<experiment>/runs/<id>`` or a sweep job ``logs/multiruns/<id>/<n>_<experiment>``) holds
``.hydra/config.yaml`` (what ran: experiment_name, seed, every key), ``csv/metrics.csv`` (one row per logged
step: per-epoch val and train errors, the learning rates, the test errors at the end) and ``run.json`` (its
state and wall time, run_record.py). A sweep folder also holds Hydra's ``multirun.yaml``: the jobs the sweep was
to run are recomputed from it with Hydra's own sweeper, so a job that never started is reported as missing.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from alexnet_lit import run_record
from alexnet_lit.metrics import TEST_ERRORS, TOP5, logged

TEST_KEYS = TEST_ERRORS


@dataclass
class Epoch:
    epoch: int
    step: int
    val_top1: float | None = None
    val_top5: float | None = None
    train_top1: float | None = None
    train_top5: float | None = None
    lr: float | None = None


@dataclass
class Run:
    folder: Path | None  # None: a sweep job that never started
    experiment: str
    seed: int | None
    state: str  # finished, failed, interrupted, running, killed, missing, unreadable
    job: str = ""  # the sweep job's overrides, or the folder
    epochs: list[Epoch] = field(default_factory=list)
    test: dict[str, float] = field(default_factory=dict)
    wall_s: float | None = None
    images_per_s: float | None = None
    reason: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    num_classes: int | None = None  # data.num_classes, resolved (chance level: 1 - 1/classes)

    def best(self, key: str = "val_top1") -> Epoch | None:
        """The epoch with the lowest val top-1 error (what the best checkpoint holds, and what was tested)."""
        done = [e for e in self.epochs if getattr(e, key) is not None]
        return min(done, key=lambda e: getattr(e, key)) if done else None


def _float(v: str | None) -> float | None:
    if v is None or v == "":
        return None
    x = float(v)
    return None if math.isnan(x) else x


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return [{k: v for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def epochs_of(rows: list[dict[str, str]]) -> list[Epoch]:
    """One Epoch per validated epoch: its val errors, the train errors logged at its end, and the learning rate
    it trained with (LearningRateMonitor logs it at the epoch's first step)."""
    by_epoch: dict[int, Epoch] = {}
    for r in rows:
        if "epoch" not in r:
            continue
        e = by_epoch.setdefault(int(float(r["epoch"])), Epoch(int(float(r["epoch"])), int(float(r["step"]))))
        e.step = max(e.step, int(float(r["step"])))
        for attr, col in (("val_top1", logged("val")), ("val_top5", logged("val", TOP5)),
                          ("train_top1", logged("train")), ("train_top5", logged("train", TOP5))):
            if col in r:
                setattr(e, attr, _float(r[col]))
    epochs = [by_epoch[k] for k in sorted(by_epoch)]
    lrs = sorted((int(float(r["step"])), float(r["lr/weights"])) for r in rows if "lr/weights" in r)
    for step, lr in lrs:  # the first epoch that ends at or after the step it was logged at
        for e in epochs:
            if e.step >= step:
                if e.lr is None:
                    e.lr = lr
                break
    return [e for e in epochs if e.val_top1 is not None or e.train_top1 is not None]


def fill_from_rows(run: Run, rows: list[dict[str, str]]) -> Run:
    """Epochs, test errors and images/s from logged rows (CSV rows, or W&B history rows in the same form)."""
    run.epochs = epochs_of(rows)
    for r in rows:
        for key in TEST_KEYS:
            if key in r:
                run.test[key] = float(r[key])
    speeds = [float(r.get("train/samples_per_sec", r["train/device/samples_per_sec"])) for r in rows
              if "train/device/samples_per_sec" in r]
    run.images_per_s = sum(speeds) / len(speeds) if speeds else None
    return run


def read_run(folder: Path, job: str = "") -> Run:
    folder = Path(folder)
    cfg_path = folder / ".hydra" / "config.yaml"
    if not cfg_path.is_file():
        return Run(folder, "?", None, "unreadable", job or str(folder), reason=f"{cfg_path} not found")
    loaded = OmegaConf.load(cfg_path)
    cfg = OmegaConf.to_container(loaded, resolve=False)
    classes = OmegaConf.select(loaded, "data.num_classes", throw_on_resolution_failure=False)
    record = run_record.read(folder)
    run = Run(folder, str(cfg.get("experiment_name", "?")), cfg.get("seed"), run_record.state(record),
              job or str(folder), config=cfg, num_classes=int(classes) if classes is not None else None)
    metrics = folder / "csv" / "metrics.csv"
    fill_from_rows(run, read_csv(metrics) if metrics.is_file() else [])
    if record is not None:
        run.wall_s = record.get("wall_s")
        run.reason = record.get("reason", "")
    elif run.test:  # a run from before run.json: its test rows say it ended
        run.state = "finished"
    else:
        run.state = "unknown"
    return run


def expected_jobs(sweep: Path) -> list[list[str]] | None:
    """The jobs of a sweep as Hydra's basic sweeper ran them (overrides per job, job number = position), from
    the sweep folder's multirun.yaml; None when there is none or another sweeper ran it."""
    path = sweep / "multirun.yaml"
    if not path.is_file():
        return None
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    cfg = OmegaConf.load(path)
    hydra = cfg.get("hydra", {})
    sweeper = hydra.get("sweeper", {})
    if "BasicSweeper" not in str(sweeper.get("_target_", "BasicSweeper")):
        return None
    params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
    task = list(hydra.get("overrides", {}).get("task", []))
    overrides = OverridesParser.create().parse_overrides(params + task)
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def _job_value(job: list[str], key: str) -> str | None:
    for o in job:
        k, _, v = o.lstrip("+~").partition("=")
        if k == key:
            return v
    return None


def read_runs(paths: list[str | Path]) -> list[Run]:
    """Runs from run folders and sweep folders (a folder holding multirun.yaml, or job folders)."""
    runs: list[Run] = []
    for p in map(Path, paths):
        if (p / ".hydra" / "config.yaml").is_file() and not (p / "multirun.yaml").is_file():
            runs.append(read_run(p))
            continue
        if not p.is_dir():
            runs.append(Run(None, "?", None, "missing", str(p), reason=f"{p}: no such folder"))
            continue
        jobs = expected_jobs(p)
        folders = {int(d.name.split("_", 1)[0]): d for d in p.iterdir()
                   if d.is_dir() and d.name.split("_", 1)[0].isdigit()}
        if jobs is None:
            runs += [read_run(folders[n]) for n in sorted(folders)]
            continue
        for n, job in enumerate(jobs):
            name = " ".join(job)
            if n in folders:
                runs.append(read_run(folders[n], name))
            else:
                seed = _job_value(job, "seed")
                runs.append(Run(None, _job_value(job, "experiment_name") or _job_value(job, "experiment") or "?",
                                int(seed) if seed and seed.isdigit() else None, "missing", name,
                                reason="never started"))
    return runs


# W&B's run states -> ours: a crashed run stopped without saying so (killed), a killed one was stopped by a user
WANDB_STATES = {"finished": "finished", "failed": "failed", "crashed": "killed", "killed": "interrupted",
                "running": "running"}


def read_wandb(source: str, api=None) -> list[Run]:
    """``wandb:ENTITY/PROJECT[/GROUP]``: the runs of a W&B project (one sweep's group), read through W&B's public
    API (online): each run's logged config (the composed one: experiment_name, seed, ...), its state and its
    history rows, which hold the same metrics as the CSV (``trainer/global_step`` as the step)."""
    parts = source.removeprefix("wandb:").strip("/").split("/")
    if len(parts) not in (2, 3):
        from alexnet_lit.config import ConfigError

        raise ConfigError(f"runs={source}: expected wandb:ENTITY/PROJECT or wandb:ENTITY/PROJECT/GROUP")
    if api is None:
        import wandb

        api = wandb.Api(timeout=60)
    filters = {"group": parts[2]} if len(parts) == 3 else None
    runs = []
    for w in api.runs(f"{parts[0]}/{parts[1]}", filters=filters):
        cfg = dict(w.config)
        classes = (cfg.get("data") or {}).get("num_classes")  # the logged config is the resolved one
        run = Run(None, str(cfg.get("experiment_name", "?")), cfg.get("seed"), WANDB_STATES.get(w.state, w.state),
                  f"wandb:{parts[0]}/{parts[1]}/{w.id}", config=cfg,
                  num_classes=classes if isinstance(classes, int) else None)
        rows = []
        for h in w.scan_history():
            row = {k: str(v) for k, v in h.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            if "trainer/global_step" in row:
                row["step"] = row["trainer/global_step"]
                rows.append(row)
        fill_from_rows(run, rows)
        run.wall_s = (w.summary or {}).get("_runtime")
        runs.append(run)
    return runs
