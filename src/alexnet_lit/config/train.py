"""The whole training config (``train_schema``): the groups, every argument of Lightning's Trainer typed by its own
signature, the paths and the top-level keys; ``validate``: the checks across groups, before any data."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, make_dataclass
from typing import Any

from omegaconf import DictConfig

from alexnet_lit.config.data import DataConfig, check_data
from alexnet_lit.config.fields import ConfigError, build, check_field, check_ranges, plain, ranged
from alexnet_lit.config.model import ModelConfig


# --- trainer: every argument of lightning.pytorch.Trainer, typed by its own signature ------------------------
def _trainer_schema() -> type:
    from lightning.pytorch import Trainer

    ours = {"use_distributed_sampler": False}  # AlexNetDataModule shards itself (exactly-once evaluation)
    # ranges Lightning does not check itself (accumulate_grad_batches=0 divides by zero in the first step)
    at_least = {"accumulate_grad_batches": 1, "num_nodes": 1, "check_val_every_n_epoch": 1, "log_every_n_steps": 1,
                "max_epochs": -1, "min_epochs": 0}
    fields: list[tuple[str, Any, Any]] = [("_target_", str, field(default="lightning.pytorch.Trainer"))]
    for name, p in inspect.signature(Trainer.__init__).parameters.items():
        if name in ("self", "logger", "callbacks"):  # loggers and callbacks come from their own groups
            continue
        default = ours.get(name, p.default)
        fields.append((name, Any, ranged(default, lo=at_least[name]) if name in at_least else field(default=default)))
    return make_dataclass("TrainerConfig", fields)


TrainerConfig = _trainer_schema()


@dataclass
class PathsConfig:
    root_dir: str = "."
    data_dir: str = "${paths.root_dir}/data"
    log_dir: str = "${paths.root_dir}/logs"
    output_dir: str = "${hydra:runtime.output_dir}"


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)  # type: ignore[valid-type]
    logger: dict[str, Any] = field(default_factory=dict)
    callbacks: dict[str, Any] = field(default_factory=dict)
    paths: PathsConfig = field(default_factory=PathsConfig)
    experiment_name: str = "default"  # W&B group and output folder; each experiment sets its own
    project: str = "alexnet-lit"  # W&B project
    tags: list[str] = field(default_factory=list)
    seed: int | None = ranged(0, 0, 2**32 - 1)  # 0 included; None for no seeding (torch seeds are uint32)
    run_id: str | None = None  # the run folder's name under runs/ (null: the checkpoint's, SLURM's job, the time)
    ckpt_path: str | None = None  # a checkpoint to resume from, or "last": the newest one of the run folder
    # checkpoints/step.ckpt within an epoch (callbacks/step_checkpoint.py): every N steps when set, else every M
    # minutes (read on logging steps); both null: per epoch only. Written off the training thread unless async=false
    checkpoint_every_n_steps: int | None = ranged(None, lo=1)
    checkpoint_every_minutes: float | None = ranged(10.0, lo=0, lo_open=True)
    checkpoint_async: bool = True
    test: bool = True  # after fit, test the best checkpoint on the centre crop and the 10-crop view
    out: str | None = None  # alexnet-eval's JSON result (null: <checkpoint>.eval.json beside the checkpoint)



def validate(cfg: DictConfig, stats_given: bool = False) -> None:
    """Checks across groups, before any data is touched (entry points call it through ``checks.check``).
    Raises ConfigError naming the keys. ``stats_given``: the training-set statistics come with a checkpoint."""
    d = build(DataConfig, plain(cfg.data), "data")  # data first: the model's num_classes follows it
    m = build(ModelConfig, plain(cfg.model), "model")
    # the ranged top-level keys (the groups: build, above)
    for name in ("seed", "checkpoint_every_n_steps", "checkpoint_every_minutes"):
        check_field(TrainConfig, name, cfg.get(name), name)
    trainer = {k: v for k, v in plain(cfg.trainer).items() if k != "_target_"}
    check_ranges(TrainerConfig(**trainer), "trainer")
    check_data(d, stats_given)
    if len(d.mean) != m.in_channels or len(d.std) != m.in_channels:
        raise ConfigError(
            f"data.mean and data.std need one value per input channel (model.in_channels={m.in_channels}), "
            f"got {len(d.mean)} and {len(d.std)}"
        )
