"""End to end: the real configs composed with tiny sizes, real steps, real files."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from alexnet_lit.callbacks import StuckAtChance
from alexnet_lit.cli.train import run
from conftest import TINY, compose_train

EXPERIMENTS = sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "experiment").glob("*.yaml"))
FEW_STEPS = ["trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1"]


def read_csv(output_dir: Path) -> list[dict[str, str]]:
    with open(output_dir / "csv" / "metrics.csv") as f:
        return list(csv.DictReader(f))


def last(rows: list[dict[str, str]], key: str) -> float:
    return float([r[key] for r in rows if r.get(key)][-1])


def test_experiments_are_all_tested():
    assert {"paper", "quickstart", "no_lrn", "tanh", "one_gpu", "no_conv3", "caffe_init"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_runs_a_few_steps(experiment, tmp_path, cache_dir):
    cfg = compose_train([f"experiment={experiment}", *TINY, *FEW_STEPS], tmp_path, cache_dir)
    assert cfg.experiment_name == experiment
    metrics = run(cfg)
    for key in ("train/loss", "val/top1_err", "val/top5_err", "test/top1_err", "test/top1_err_10crop"):
        assert 0.0 <= metrics[key] < 100.0, key
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


def test_logged_metric_names_and_weights_only_checkpoints(tmp_path, cache_dir):
    cfg = compose_train([*TINY, "trainer.max_epochs=2", "callbacks.throughput.window_size=2"], tmp_path, cache_dir)
    run(cfg)
    rows = read_csv(tmp_path)
    names = set(rows[0])
    expected = {
        "train/loss", "train/top1_err", "train/top5_err", "val/loss", "val/top1_err", "val/top5_err",
        "test/top1_err", "test/top5_err", "test/top1_err_10crop", "test/top5_err_10crop", "test/loss_10crop",
        "lr/weights", "lr/biases", "train/device/samples_per_sec", "train/device/flops_per_sec",
    }
    assert expected <= names, expected - names
    assert last(rows, "lr/weights") == pytest.approx(0.01)
    assert last(rows, "train/device/samples_per_sec") > 0
    ckpts = sorted((tmp_path / "checkpoints").glob("*.ckpt"))
    assert {p.name for p in ckpts} >= {"last.ckpt"} and len(ckpts) >= 2
    for path in ckpts:
        state = torch.load(path, weights_only=True, map_location="cpu")
        assert state["epoch"] in (0, 1) and "state_dict" in state
        assert state["hyper_parameters"]["towers"] == "two"


def test_seed_zero_is_honoured(tmp_path, cache_dir):
    def loss(seed: int, name: str) -> float:
        cfg = compose_train([*TINY, *FEW_STEPS, f"seed={seed}", "test=false"], tmp_path / name, cache_dir)
        return run(cfg)["val/loss"]

    a, b, c = loss(0, "a"), loss(0, "b"), loss(1, "c")
    assert a == b and a != c


def test_plateau_schedule_reduces_lr_and_stops(tmp_path, cache_dir):
    """lr=1e-6: the error does not improve, so with patience 0 every epoch reduces the lr, and one past
    max_lr_reductions=1 ends training long before max_epochs. (lr=0 cannot be reduced: 0 * 0.1 == 0.)"""
    over = ["model.optimizer.lr=1e-6", "model.scheduler.patience=0", "model.scheduler.max_lr_reductions=1",
            "trainer.max_epochs=20", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1", "test=false"]
    cfg = compose_train([*TINY, *over], tmp_path, cache_dir)
    run(cfg)
    rows = read_csv(tmp_path)
    assert [int(r["epoch"]) for r in rows if r.get("val/top1_err")] == [0, 1, 2]  # best, reduce, stop
    assert [float(r["lr/weights"]) for r in rows if r.get("lr/weights")] == pytest.approx([1e-6, 1e-6, 1e-7])


def test_stuck_at_chance_warns_and_stops(tmp_path, cache_dir):
    over = ["model.optimizer.lr=0", "callbacks.chance.after_steps=2", "callbacks.chance.stop=true",
            "trainer.max_epochs=5", "test=false"]
    cfg = compose_train([*TINY, *over], tmp_path, cache_dir)
    with pytest.warns(UserWarning, match=r"STUCK AT CHANCE.*model.init=caffe"):
        run(cfg)
    steps = [int(r["step"]) for r in read_csv(tmp_path) if r.get("train/loss")]
    assert max(steps) <= 3  # stopped right after the check, not after 5 epochs


@pytest.mark.parametrize("loss, warns", [(math.log(1000), True), (math.log(1000) - 0.1, True), (5.5, False)])
def test_stuck_at_chance_margin(loss, warns, recwarn):
    cb = StuckAtChance(after_steps=3, window=3, margin=0.02)
    trainer, module = SimpleNamespace(global_step=0, should_stop=False), SimpleNamespace(num_classes=1000)
    for step in range(1, 5):
        trainer.global_step = step
        cb.on_train_batch_end(trainer, module, {"loss": torch.tensor(loss)}, None, step)
    assert bool([w for w in recwarn if "STUCK AT CHANCE" in str(w.message)]) == warns
    assert not trainer.should_stop  # stop=false only warns
