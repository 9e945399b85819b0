"""Print the network of the composed config, layer by layer; the last line is the parameter count.

    alexnet-describe                               # the paper's net: ... total params: 60,965,224
    alexnet-describe model.towers=one_half         # 59,798,312 (the paper's one-GPU net)
    alexnet-describe +experiment=no_lrn data.crop_size=227

Takes the same config and overrides as train.py (conf/train.yaml); reads no data.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from alexnet_lit.cli import config_dir, exit_on_user_error, normalize_argv
from alexnet_lit.config import plain, validate
from alexnet_lit.models.alexnet import AlexNet


def describe(cfg: DictConfig, console: Console | None = None) -> int:
    validate(cfg)
    net_args = {k: v for k, v in plain(cfg.model).items() if k not in ("optimizer", "scheduler", "channels_last")}
    net = AlexNet(**net_args)
    table = Table(title=f"AlexNet: towers={net.towers}, input {net.input_size}x{net.input_size}")
    for col in ("layer", "tower", "output shape", "params"):
        table.add_column(col, justify="right" if col == "params" else "left")
    for name, tower, shape, params in net.describe():
        table.add_row(name, tower, " x ".join(map(str, shape)), f"{params:,}" if params else "")
    total = sum(p.numel() for p in net.parameters())
    console = console or Console()
    console.print(table)
    console.print(f"total params: {total:,}", highlight=False)
    return total


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def _hydra_main(cfg: DictConfig) -> None:
    exit_on_user_error(describe, cfg)


def main() -> None:
    normalize_argv()
    sys.argv += ["hydra.output_subdir=null", "hydra.run.dir=.", "hydra/job_logging=none", "hydra/hydra_logging=none"]
    _hydra_main()


if __name__ == "__main__":
    main()
