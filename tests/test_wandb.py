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
