"""The command line as a user meets it: real processes, bad overrides, sweeps, kill and resume, describe."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import ROOT, TINY, run_cli

FEW_STEPS = ["trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1"]
DESCRIBE = shutil.which("alexnet-describe", path=str(Path(sys.executable).parent))


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.foo=1", "Key 'foo' not in 'ModelConfig'"),
        ("model.dropout=high", "model.dropout"),
        ("model.towers=three", "expected one of [two, one_half, one]"),
        ("experiment=nope", "error: experiment=nope: add a +, as in +experiment=nope"),
        ("+experiment=nope", "Could not find 'experiment/nope'"),
        ("model.width=0.3", "model.towers=two"),
        ("data.crop_size=80", "data.crop_size=80 is larger than data.resize_size=72"),
        ("data.num_classes=7", "data.generated.classes=10 differs from data.num_classes=7"),
    ],
)
def test_bad_overrides_fail_before_any_work(override, message, tmp_path):
    cache = tmp_path / "cache"
    proc = run_cli([override, *TINY], tmp_path, cache)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert message in out, out
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("metrics.csv"))
    assert not cache.exists(), "data was generated although the config was invalid"


@pytest.mark.parametrize(
    "args, message",
    [(["+experiment=paper", "data.root=nowhere"], "nowhere/stats.npz not found (data.stats_path)"),
     (["+experiment=paper", "data.root=nowhere", "data.stats_path=null", "data.lighting.enabled=false",
       "data.normalize=channel"], "nowhere/manifest.json not found: data.root must be a folder made by alexnet-prep"),
     (["data=imagenet", "data.root=bad"], "bad/train/cats: not an ILSVRC-2012 wnid")],
)
def test_missing_or_wrong_imagenet_names_the_key(args, message, tmp_path):
    (tmp_path / "bad" / "train" / "cats").mkdir(parents=True)
    (tmp_path / "bad" / "val" / "cats").mkdir(parents=True)
    proc = run_cli([*args, "logger=csv_only"], tmp_path, tmp_path)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_missing_imagenet_folder_names_the_key(tmp_path):
    proc = run_cli(["data=imagenet", f"data.root={tmp_path}/nowhere", "logger=csv_only"], tmp_path, tmp_path)
    assert proc.returncode == 2
    assert f"{tmp_path}/nowhere/train does not exist: data.root" in proc.stderr


@pytest.mark.skipif(DESCRIBE is None, reason="alexnet-describe is not installed (pip install -e .)")
@pytest.mark.parametrize(
    "args, total",
    [([], "60,965,224"), (["+experiment=one_gpu"], "59,798,312"), 
     (["model.towers=one"], "62,378,344"), (["+experiment=no_lrn", "data.crop_size=227"], "60,965,224")],
)
def test_describe_prints_the_composed_parameter_count(args, total, tmp_path):
    proc = subprocess.run([DESCRIBE, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == f"total params: {total}"
    assert any("55 x 55" in line for line in lines) and any("6 x 6" in line for line in lines)


def test_sweep_gives_each_run_its_own_folder(tmp_path, cache_dir):
    proc = run_cli(["-m", "+experiment=no_lrn,tanh", *TINY, *FEW_STEPS, "test=false"], tmp_path, cache_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(p.parent.parent for p in (tmp_path / "logs" / "multiruns").rglob("csv/metrics.csv"))
    assert [p.name for p in runs] == ["0_no_lrn", "1_tanh"]
    assert all((p / "checkpoints" / "last.ckpt").is_file() for p in runs)


def test_named_sweep_runs_every_ablation(tmp_path, cache_dir):
    proc = run_cli(["+sweep=ablations", *TINY, "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
                    "test=false"], tmp_path, cache_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = sorted(p.parent.parent.name for p in (tmp_path / "logs" / "multiruns").rglob("csv/metrics.csv"))
    expected = "paper tanh no_lrn non_overlap_pool one_gpu no_dropout no_conv3 no_conv4 no_pca".split()
    assert names == sorted(f"{i}_{n}" for i, n in enumerate(expected))


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_killed_run_resumes_from_last_ckpt(tmp_path, cache_dir):
    """SIGKILL a real training process after its first epoch's checkpoint, then resume from last.ckpt."""
    run_dir = tmp_path / "first"
    env = {**os.environ, "ALEXNET_LIT_CACHE": str(cache_dir), "WANDB_MODE": "offline"}
    cmd = [sys.executable, str(ROOT / "train.py"), *TINY, "trainer.max_epochs=100", "test=false",
           f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 180
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(0.5)  # let the file be complete: Lightning writes it atomically, but be safe about the rename
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert last.exists() and proc.returncode == -signal.SIGKILL
    state = torch.load(last, weights_only=True)
    done_epochs, done_steps = state["epoch"] + 1, state["global_step"]

    resumed = tmp_path / "resumed"
    res = run_cli([*TINY, f"trainer.max_epochs={done_epochs + 2}", "test=false", f"ckpt_path={last}",
                   f"hydra.run.dir={resumed}"], tmp_path, cache_dir)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = read_rows(resumed / "csv" / "metrics.csv")
    epochs = sorted({int(r["epoch"]) for r in rows if r.get("val/top1_err")})
    assert epochs == [done_epochs, done_epochs + 1]  # continues, does not restart at epoch 0
    final = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["global_step"] == done_steps + 2 * (done_steps // done_epochs)


def test_ddp_two_processes_on_cpu_shard_the_training_set(tmp_path, cache_dir):
    """A real 2-process DDP run (gloo): each rank takes half of the 120 training images per epoch."""
    out = tmp_path / "ddp"
    args = [*TINY, "trainer=ddp_cpu", "trainer.devices=2", "trainer.max_epochs=2", f"hydra.run.dir={out}"]
    proc = run_cli(args, tmp_path, cache_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    per_rank_steps = (10 * 12 // 2) // 16  # 10 classes x 12 images, halved, in batches of 16 (drop_last)
    assert state["global_step"] == 2 * per_rank_steps
    rows = read_rows(out / "csv" / "metrics.csv")
    assert any(r.get("test/top1_err_10crop") for r in rows)


def test_ddp_evaluates_every_validation_image_exactly_once(tmp_path, cache_dir):
    """7 classes x 3 = 21 validation images on 2 ranks: 11 + 10, no padded duplicate (DistributedSampler would
    make it 22)."""
    out = tmp_path / "ddp"
    args = [*TINY, "trainer=ddp_cpu", "trainer.devices=2", "data.generated.classes=7", "data.num_classes=7",
            "data.generated.val_per_class=3", f"hydra.run.dir={out}"]
    proc = run_cli(args, tmp_path, cache_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_rows(out / "csv" / "metrics.csv")
    assert [float(r["val/images"]) for r in rows if r.get("val/images")] == [21.0]
    assert [float(r["test/images"]) for r in rows if r.get("test/images")] == [21.0]
    assert [float(r["test/images_10crop"]) for r in rows if r.get("test/images_10crop")] == [21.0]


EVAL = shutil.which("alexnet-eval", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(EVAL is None, reason="alexnet-eval is not installed (pip install -e .)")
def test_eval_reproduces_the_test_metrics_of_the_best_checkpoint(tmp_path, cache_dir):
    from alexnet_lit.cli.train import run
    from conftest import compose_train

    metrics = run(compose_train([*TINY, "trainer.max_epochs=2"], tmp_path / "train", cache_dir))
    (best,) = (tmp_path / "train" / "checkpoints").glob("best-*.ckpt")
    out = tmp_path / "eval"
    data = ["+debug=tiny"]
    proc = subprocess.run([EVAL, f"ckpt_path={best}", *data, "logger=csv_only", f"hydra.run.dir={out}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "ALEXNET_LIT_CACHE": str(cache_dir)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_rows(out / "csv" / "metrics.csv")
    for key in ("test/top1_err", "test/top1_err_10crop", "test/loss"):
        assert float([r[key] for r in rows if r.get(key)][0]) == pytest.approx(metrics[key], abs=1e-6), key
    missing = subprocess.run([EVAL, *data], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "ckpt_path is not set" in missing.stderr
