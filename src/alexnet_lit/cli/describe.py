"""Print the network of the composed config, layer by layer with its settings; the last line is the parameter count.

    alexnet-describe                               # the paper's net: ... total params: 60,965,224
    alexnet-describe model.towers=one_half         # 59,798,312 (the paper's one-GPU net)
    alexnet-describe +experiment=tanh              # every ablation that changes the network shows in the rows

Takes the same config and overrides as train.py (conf/train.yaml); reads no data.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from alexnet_lit.cli import check, config_dir, exit_on_user_error, hydra_entry_point
from alexnet_lit.config import ModelConfig, build, plain
from alexnet_lit.models.alexnet import AlexNet


def input_settings(data: DictConfig) -> str:
    """What reaches conv1: the pixel scale and the mean that is subtracted."""
    mean = "the mean image" if data.normalize.value == "mean_image" else "the channel mean, / std"
    return f"pixels 0..{data.pixel_max:g} (pixel_max) minus {mean}"


def describe(cfg: DictConfig, console: Console | None = None) -> int:
    check(cfg)
    net = AlexNet(build(ModelConfig, plain(cfg.model), "model"))
    table = Table(title=f"AlexNet: towers={net.towers.value}, input {net.input_size}x{net.input_size}")
    for col in ("layer", "operation", "tower", "output shape", "params"):
        table.add_column(col, justify="right" if col == "params" else "left")
    channels = net.cfg.in_channels
    table.add_row("input", input_settings(cfg.data), "", f"{channels} x {net.input_size} x {net.input_size}", "")
    for name, op, tower, shape, params in net.describe():
        table.add_row(name, op, tower, " x ".join(map(str, shape)), f"{params:,}" if params else "")
    total = sum(p.numel() for p in net.parameters())
    console = console or Console(width=140)
    console.print(table)
    console.print(f"total params: {total:,}", highlight=False)
    return total


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def _hydra_main(cfg: DictConfig) -> None:
    exit_on_user_error(describe, cfg)


def main() -> None:
    sys.argv += ["hydra.output_subdir=null", "hydra.run.dir=.", "hydra/job_logging=none", "hydra/hydra_logging=none"]
    hydra_entry_point(_hydra_main, "train", check)


if __name__ == "__main__":
    main()
