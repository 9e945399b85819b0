"""End to end: the real configs composed with tiny sizes, real steps, real files."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning import pytorch as pl

from alexnet_lit.callbacks import StuckAtChance
from alexnet_lit.cli.train import run
from conftest import TINY, compose_train

EXPERIMENTS = sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "experiment").glob("*.yaml"))
FEW_STEPS = ["trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1"]
# in this process: two_gpu's tower strategy starts 2 processes (tests/test_towers.py runs it so); here its network
ONE_PROCESS = {"two_gpu": ["trainer=cpu"]}


def read_csv(output_dir: Path) -> list[dict[str, str]]:
    with open(output_dir / "csv" / "metrics.csv") as f:
        return list(csv.DictReader(f))


def last(rows: list[dict[str, str]], key: str) -> float:
    return float([r[key] for r in rows if r.get(key)][-1])


def test_experiments_are_all_tested():
    assert {"paper", "quickstart", "no_lrn", "tanh", "one_gpu", "no_conv3", "caffe_init"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_runs_a_few_steps(experiment, tmp_path, cache_dir):
    cfg = compose_train([f"+experiment={experiment}", *ONE_PROCESS.get(experiment, []), *TINY, *FEW_STEPS], tmp_path,
                        cache_dir)
    assert cfg.experiment_name == experiment
    metrics = run(cfg)
    for key in ("val/top1_err", "test/top1_err", "test/top1_err_10crop"):  # error rates: fractions of the images
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["val/top5_err"] <= metrics["val/top1_err"] and math.isfinite(metrics["train/loss"])
    batch = cfg.data.batch_size  # one batch validated and tested (FEW_STEPS), every image of it counted once
    assert metrics["val/images"] == metrics["test/images"] == batch
    assert metrics["test/images_10crop"] == max(1, batch // 10)
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
    with pytest.warns(UserWarning, match=r"STUCK AT CHANCE.*model.init=paper .*Fix: model.init=kaiming"):
        run(cfg)
    steps = [int(r["step"]) for r in read_csv(tmp_path) if r.get("train/loss")]
    assert max(steps) <= 3  # stopped right after the check, not after 5 epochs


@pytest.mark.parametrize("loss, warns", [(math.log(1000), True), (math.log(1000) - 0.1, True), (5.5, False)])
def test_stuck_at_chance_margin(loss, warns, recwarn):
    cb = StuckAtChance(after_steps=3, window=3, margin=0.02, stop=False)
    strategy = SimpleNamespace(reduce=lambda t, reduce_op: t)
    trainer = SimpleNamespace(global_step=0, should_stop=False, strategy=strategy,
                              _logger_connector=SimpleNamespace(should_update_logs=True))  # every step logs
    module = SimpleNamespace(num_classes=1000)
    for step in range(1, 5):
        trainer.global_step = step
        cb.on_train_batch_end(trainer, module, {"loss": torch.tensor(loss)}, None, step)
    assert bool([w for w in recwarn if "STUCK AT CHANCE" in str(w.message)]) == warns
    assert not trainer.should_stop  # stop=false only warns


def test_paper_optimizer_trains_and_its_velocity_survives_the_checkpoint(tmp_path, cache_dir):
    cfg = compose_train([*TINY, "model.optimizer.name=paper", "trainer.max_epochs=2", "test=false"], tmp_path,
                        cache_dir)
    assert run(cfg)["train/loss"] > 0
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    saved = state["optimizer_states"][0]
    velocities = [s["velocity"] for s in saved["state"].values()]
    assert len(velocities) == 16 and all(v.abs().sum() > 0 for v in velocities)
    from alexnet_lit.module import AlexNetModule
    from alexnet_lit.paper_sgd import PaperSGD

    optimizer = AlexNetModule(**state["hyper_parameters"]).configure_optimizers()["optimizer"]
    assert isinstance(optimizer, PaperSGD)
    optimizer.load_state_dict(saved)
    restored = [s["velocity"] for s in optimizer.state_dict()["state"].values()]
    assert all(torch.equal(a, b) for a, b in zip(velocities, restored))


def test_tests_the_checkpoint_of_the_monitoring_callback_and_returns_the_best_error(tmp_path, cache_dir):
    """The best-checkpoint callback is moved behind last_checkpoint (Lightning's trainer.checkpoint_callback is the
    first one); the test must still use the checkpoint with the best val/top1_err, and report that error."""
    best = "+callbacks.zbest"
    over = ["~callbacks.checkpoint", f"{best}._target_=lightning.pytorch.callbacks.ModelCheckpoint",
            f"{best}.dirpath={tmp_path}/checkpoints", f"{best}.filename='best-{{epoch:03d}}'", f"{best}.mode=min",
            f"{best}.monitor=val/top1_err", "trainer.max_epochs=3", "model.optimizer.lr=0.1", "model.init=kaiming",
            "data.pixel_max=1"]
    cfg = compose_train([*TINY, *over], tmp_path, cache_dir)
    assert list(cfg.callbacks).index("last_checkpoint") < list(cfg.callbacks).index("zbest")
    metrics = run(cfg)
    rows = read_csv(tmp_path)
    val = [float(r["val/top1_err"]) for r in rows if r.get("val/top1_err")]
    from alexnet_lit.cli.train import sweeper_value

    assert sweeper_value(metrics) == metrics["best/val/top1_err"] == pytest.approx(min(val))
    assert math.isnan(sweeper_value({"val/top1_err": 0.5}))  # nothing validated: NaN, never None or the last
    (path,) = (tmp_path / "checkpoints").glob("best-*.ckpt")
    assert int(path.stem.split("=")[-1]) == val.index(min(val)) < len(val) - 1  # the first best epoch, not the last
    from alexnet_lit.config import plain
    from alexnet_lit.data import AlexNetDataModule
    from alexnet_lit.module import AlexNetModule

    def test_loss(ckpt) -> float:
        state = torch.load(ckpt, weights_only=True)
        model = AlexNetModule(**state["hyper_parameters"])
        model.load_state_dict(state["state_dict"])
        trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
        return trainer.test(model, AlexNetDataModule(**plain(cfg.data)), verbose=False)[0]["test/loss"]

    assert metrics["test/loss"] == pytest.approx(test_loss(path), abs=1e-6)
    assert metrics["test/loss"] != pytest.approx(test_loss(tmp_path / "checkpoints" / "last.ckpt"), abs=1e-6)


def test_user_callback_from_the_command_line(tmp_path, cache_dir):
    """+callbacks.NAME._target_=pkg.Class with its arguments as further keys, as lightning-hydra-template users do."""
    over = ["+callbacks.early._target_=lightning.pytorch.callbacks.EarlyStopping",
            "+callbacks.early.monitor=val/top1_err", "+callbacks.early.patience=0", "+callbacks.early.mode=min",
            "+callbacks.early.check_finite=true", "model.optimizer.lr=0", "trainer.max_epochs=6", "test=false"]
    run(compose_train([*TINY, *over], tmp_path, cache_dir))
    epochs = {int(r["epoch"]) for r in read_csv(tmp_path) if r.get("val/top1_err")}
    assert epochs == {0, 1}  # lr 0: no improvement after epoch 0, patience 0 stops after epoch 1


@pytest.mark.parametrize("override", ["trainer.overfit_batches=1", "trainer.profiler=simple",
                                      "trainer.limit_predict_batches=2", "trainer.detect_anomaly=true"])
def test_trainer_accepts_every_trainer_argument(override, tmp_path, cache_dir):
    cfg = compose_train([*TINY, override], tmp_path, cache_dir)
    from hydra.utils import instantiate

    key, value = override.split(".", 1)[1].split("=")
    trainer = instantiate(cfg.trainer)
    assert str(cfg.trainer[key]).lower() == value
    assert trainer is not None


def test_debug_fdr_runs_one_batch_of_each(tmp_path, cache_dir):
    small = ["data=generated", "data.generated.train_per_class=4", "data.generated.val_per_class=2",
             "data.batch_size=16", "data.num_workers=0", "model.width=0.0625", "model.fc_units=32", "logger=csv_only",
             "callbacks.progress=null"]
    metrics = run(compose_train(["+debug=fdr", *TINY[1:], *small], tmp_path, cache_dir))
    assert {"test/top1_err", "test/top1_err_10crop"} <= set(metrics)
    assert not (tmp_path / "checkpoints").exists()  # fast_dev_run writes no checkpoint


def test_stuck_at_chance_reads_the_loss_once_and_decides_on_the_mean_over_ranks(monkeypatch):
    """No host sync in the steps before the check (the losses stay tensors), one at the check; the decision uses
    the loss averaged over ranks (strategy.reduce), so every DDP rank stops or goes on alike."""
    syncs = []
    for name in ("item", "__float__", "tolist", "cpu"):
        real = getattr(torch.Tensor, name)

        def spy(self, *args, _real=real, _name=name, **kwargs):
            syncs.append(_name)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, spy)
    other_rank = torch.tensor(2 * math.log(1000) - 5.0)  # with this rank's 5.0, the mean over ranks is ln 1000
    strategy = SimpleNamespace(reduce=lambda t, reduce_op: (t + other_rank) / 2)
    trainer = SimpleNamespace(global_step=0, should_stop=False, strategy=strategy,
                              _logger_connector=SimpleNamespace(should_update_logs=True))  # every step logs
    cb = StuckAtChance(after_steps=20, window=5, margin=0.02, stop=True)
    with pytest.warns(UserWarning, match="STUCK AT CHANCE"):
        for step in range(1, 22):
            trainer.global_step = step
            cb.on_train_batch_end(trainer, SimpleNamespace(num_classes=1000), {"loss": torch.tensor(5.0)}, None, step)
            if step < 20:
                assert syncs == [], f"host sync at step {step}"
    assert syncs == ["__float__"] and trainer.should_stop


def test_resume_on_differently_prepared_inputs_fails_naming_the_difference(tmp_path, cache_dir):
    from alexnet_lit.checkpoint import DATA_STATE
    from alexnet_lit.config import ConfigError
    from alexnet_lit.data.contract import InputContract

    run(compose_train([*TINY, "test=false"], tmp_path / "a", cache_dir))
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    state = torch.load(last, weights_only=True)
    assert InputContract.of(state).pixel_max == 255 and "input_contract" not in state  # kept by the data module
    legacy = tmp_path / "legacy.ckpt"  # the layout before 2026-12-03: the contract at the top level
    state["input_contract"] = state[DATA_STATE].pop("input_contract")
    torch.save(state, legacy)
    for ckpt, out in ((last, "b"), (legacy, "c")):
        with pytest.raises(ConfigError, match=r"pixel_max: 255.0 \(checkpoint\) vs 1.0 \(now\)"):
            run(compose_train([*TINY, "trainer.max_epochs=2", "data.pixel_max=1", f"ckpt_path={ckpt}"],
                              tmp_path / out, cache_dir))



@pytest.mark.parametrize("init, activation, fix", [
    ("paper", "tanh", "Fix: model.init=lecun"), ("caffe", "lecun_tanh", "Fix: model.init=lecun"),
    ("paper", "relu", "Fix: model.init=kaiming"), ("lecun", "tanh", "look at the learning rate"),
])
def test_stuck_at_chance_names_the_fix_for_this_init_and_unit(init, activation, fix):
    from alexnet_lit.callbacks.chance import likely_fix

    assert fix in likely_fix(SimpleNamespace(hparams={"init": init, "activation": activation}))
