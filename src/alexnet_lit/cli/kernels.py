"""Figure 3 of the paper for a checkpoint: conv1's kernels as a PNG grid, towers apart, and each tower's colour
measure (callbacks/kernels.py says what it measures).

    alexnet-kernels ckpt_path=logs/paper/runs/<id>/checkpoints/last.ckpt out=conv1.png
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from alexnet_lit.callbacks.kernels import save
from alexnet_lit.checkpoint import read
from alexnet_lit.config import ConfigError, KernelsConfig, build
from alexnet_lit.entry import config_dir, exit_on_user_error, hydra_entry_point
from alexnet_lit.inference import load
from alexnet_lit.paths import check_writable


def check_kernels(cfg: DictConfig) -> KernelsConfig:
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise ConfigError("ckpt_path not set: alexnet-kernels ckpt_path=CKPT [out=conv1.png]")
    c = build(KernelsConfig, OmegaConf.to_container(cfg, resolve=True))
    read(c.ckpt_path)
    check_writable(str(Path(c.out).expanduser().resolve().parent), "out")
    return c


def run(cfg: DictConfig) -> None:
    c = check_kernels(cfg)
    module, _ = load(c.ckpt_path)
    colours = save(module, c.out, c.scale)
    print(f"{c.out}: " + ", ".join(f"tower {i + 1} colour fraction {v:.3f}" for i, v in enumerate(colours))
          + " (0: colour-agnostic, 1: opponent colours)")


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="kernels")
def _hydra_main(cfg: DictConfig) -> None:
    exit_on_user_error(run, cfg)


def main() -> None:
    hydra_entry_point(_hydra_main, "kernels", check_kernels)


if __name__ == "__main__":
    main()
