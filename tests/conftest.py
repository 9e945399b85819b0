"""Shared test helpers: compose the real configs (conf/) with tiny sizes, run the real train.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED = ROOT.parent / "shared" / "data"

# The debug=tiny group (conf/debug/tiny.yaml: the paper's network at 1/16 width on 64 px crops of the embedded
# data, ~10k parameters), on one CPU process in fp32 so that results are exact. Keep +experiment before it.
TINY = ["+debug=tiny", "trainer.accelerator=cpu", "trainer.devices=1", "trainer.precision=32-true"]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One cache (generated data) for the whole session, outside the repository."""
    return tmp_path_factory.mktemp("cache")


def compose_train(overrides: list[str], output_dir: Path, cache: Path) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"paths.output_dir={output_dir}", f"data.cache_dir={cache}"])
    return cfg


def run_cli(args: list[str], cwd: Path, cache: Path, timeout: int = 300, script: str = "train.py",
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Run train.py (or another entry point) as a user would, in a fresh process."""
    full_env = {**os.environ, "ALEXNET_LIT_CACHE": str(cache), "WANDB_MODE": "offline", **(env or {})}
    cmd = [sys.executable, str(ROOT / script), *args] if script.endswith(".py") else [script, *args]
    return subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
