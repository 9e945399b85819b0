"""A real offline W&B run, read back with W&B's own reader (`wandb leet inspect --summary --json`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from alexnet_lit.cli.train import run
from alexnet_lit.loggers import should_run_offline
from conftest import TINY, compose_train

WANDB = shutil.which("wandb", path=str(Path(sys.executable).parent))


def test_offline_unless_a_key_is_set(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert should_run_offline()
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert not should_run_offline()
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert should_run_offline()


@pytest.mark.skipif(WANDB is None, reason="the wandb command is not installed")
def test_offline_run_logs_metrics_config_group_and_tags(tmp_path, cache_dir, monkeypatch, capsys):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    over = [o for o in TINY if not o.startswith("logger=")]
    cfg = compose_train(["+experiment=no_lrn", *over, "logger=default", "trainer.limit_train_batches=3",
                         "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", "tags=[unit]"],
                        tmp_path, cache_dir)
    run(cfg)
    assert "wandb sync" in capsys.readouterr().out
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    proc = subprocess.run([WANDB, "leet", "inspect", "--summary", "--json", str(run_dir)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    summary = record["summary"]
    for key in ("train/loss", "val/top1_err", "val/top5_err", "test/top1_err", "test/top1_err_10crop", "lr/weights"):
        assert key in summary, (key, sorted(summary))
    assert set(summary["val/top1_err"]) == {"min"}  # error metrics get min summaries
    assert record["project"] == "alexnet-lit" and record["state"] == "finished"
    assert record["name"].startswith("no_lrn") and record["name"].endswith("seed0")
    assert {"no_lrn", "unit"} <= set(record["tags"])
    config = record["config"]
    assert config["model"]["lrn"]["enabled"] is False and config["experiment_name"] == "no_lrn"


def test_jobs_of_a_sweep_share_its_group_and_carry_their_ablation(tmp_path, monkeypatch):
    """In a sweep the W&B group is the sweep folder's name (alexnet-report --wandb reports that group); the
    ablation is the job type and a tag; seeds and the sweep's own name are not part of the recipe."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict

    from alexnet_lit.loggers import finish, wandb_logger
    from conftest import CONF

    monkeypatch.setenv("WANDB_MODE", "offline")
    job = ["seed=1", "+experiment=no_lrn", "+proxy=cifar10", "+sweep=ablations_cifar10", "run_id=abl"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=job, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.mode = RunMode.MULTIRUN
        cfg.hydra.runtime.output_dir = str(tmp_path / "multiruns" / "abl" / "4_no_lrn")
        cfg.hydra.overrides.task = job
    HydraConfig.instance().set_config(cfg)
    try:
        logger = wandb_logger(project="alexnet-lit", experiment_name="no_lrn", save_dir=str(tmp_path), seed=1)
        run = logger.experiment
        assert run.group == "abl"
        assert run.job_type == "no_lrn/proxy=cifar10"
        assert run.name == "no_lrn/proxy=cifar10/seed1"
        assert {"no_lrn", "+experiment=no_lrn", "seed=1"} <= set(run.tags)
        finish([logger])
    finally:
        HydraConfig.instance().cfg = None
