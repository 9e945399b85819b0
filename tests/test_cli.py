"""The command line as a user meets it: real processes, bad overrides, sweeps, kill and resume, describe."""

from __future__ import annotations

import csv
import json
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


@pytest.mark.skipif(DESCRIBE is None, reason="alexnet-describe is not installed (pip install -e .)")
@pytest.mark.parametrize(
    "args, total, process",
    [([], "60,965,224", True), (["+experiment=one_gpu"], "59,798,312", False),
     (["model.towers=one"], "62,378,344", False), (["+experiment=no_lrn", "data.crop_size=227"], "60,965,224", True)],
)
def test_describe_prints_the_composed_parameter_count(args, total, process, tmp_path):
    if process:  # the installed command, as a user runs it
        proc = subprocess.run([DESCRIBE, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout
    else:
        out = describe_rows(args)
    lines = out.strip().splitlines()
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


def test_ddp_two_processes_on_cpu_shard_the_data_and_evaluate_every_image_exactly_once(tmp_path, cache_dir):
    """A real 2-process DDP run (gloo): each rank takes half of the 7 x 12 = 84 training images per epoch; the 7 x 3
    = 21 validation and test images are split 11 + 10 and each counted once, on the centre crop and the 10-crop
    view (DistributedSampler would pad them to 22). Killed and resumed under DDP: test_resume_ddp.py."""
    out = tmp_path / "ddp"
    args = [*TINY, "trainer=ddp_cpu", "trainer.devices=2", "trainer.max_epochs=2", "data.generated.classes=7",
            "data.num_classes=7", "data.generated.val_per_class=3", f"hydra.run.dir={out}"]
    proc = run_cli(args, tmp_path, cache_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    per_rank_steps = (7 * 12 // 2) // 16  # halved, in batches of 16 (drop_last)
    assert state["global_step"] == 2 * per_rank_steps
    rows = read_rows(out / "csv" / "metrics.csv")
    assert [float(r["val/images"]) for r in rows if r.get("val/images")] == [21.0, 21.0]
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


NETWORK_ABLATIONS = {"tanh": "Tanh", "no_lrn": None, "non_overlap_pool": "max-pool 2x2/2",
                     "one_gpu": "conv 5x5/1 pad 2; init", "no_dropout": "dropout p=0", "no_conv3": None,
                     "no_conv4": None, "caffe_init": "init N(0, 0.005), bias 0.1"}


def describe_rows(overrides: list[str]) -> str:
    from rich.console import Console

    from alexnet_lit.cli.describe import describe
    from conftest import compose_train

    console = Console(record=True, width=200)
    describe(compose_train(overrides, Path("."), Path(".")), console)
    return console.export_text()


def test_describe_names_every_setting_an_ablation_changes():
    small = ["model.width=0.125", "model.fc_units=64"]  # the rows' settings do not depend on the size
    paper = describe_rows(["+experiment=paper", *small])
    for text in ("pixels 0..255 (pixel_max) minus the mean image", "ReLU", "max-pool 3x3/2", "dropout p=0.5",
                 "LRN n=5 k=2 alpha=0.0001 beta=0.75 (paper)", "conv 11x11/4 pad 2", "groups 2",
                 "init N(0, 0.01), bias 1"):
        assert text in paper, text
    for experiment, shows in NETWORK_ABLATIONS.items():
        rows = describe_rows([f"+experiment={experiment}", *small])
        assert rows != paper, experiment
        if shows:
            assert shows in rows, (experiment, shows)
    assert "LRN" not in describe_rows(["+experiment=no_lrn", *small])
    assert "conv3 " not in describe_rows(["+experiment=no_conv3", *small])
    assert "pixels 0..1 " in describe_rows(["+experiment=paper", "data.pixel_max=1", *small])


def test_debug_after_experiment_and_plus_for_appended_groups(tmp_path):
    from alexnet_lit.entry import check_argv

    assert check_argv(["debug=tiny"]).startswith("debug=tiny: add a +, as in +debug=tiny")
    assert check_argv(["sweep=ablations", "-m"]).startswith("sweep=ablations: add a +")
    assert check_argv(["+experiment=paper", "+debug=tiny", "data.root=x"]) is None
    assert check_argv(["-m", "+experiment=paper,tanh", "hydra.run.dir=x"]) is None
    assert check_argv(["proxy=cifar10"]).startswith("proxy=cifar10: add a +")
    assert check_argv(["+proxy=cifar10", "+experiment=no_lrn"]).startswith("put +proxy=... after +experiment")
    assert check_argv(["+experiment=no_lrn", "+proxy=cifar10", "+debug=tiny"]) is None
    proc = run_cli(["+debug=tiny", "+experiment=paper"], tmp_path, tmp_path / "cache")
    assert proc.returncode == 2 and proc.stderr == "error: put +debug=... after +experiment=...: Hydra applies " \
                                                   "appended groups in command-line order\n"


def test_composing_needs_no_prior_import_of_the_package(tmp_path):
    """The schemas register through Hydra's plugin discovery, whatever the caller imported first."""
    code = ("from hydra import compose, initialize_config_dir\n"
            f"with initialize_config_dir(config_dir={str(ROOT / 'conf')!r}, version_base='1.3'):\n"
            "    cfg = compose('train', overrides=['+experiment=no_lrn', 'trainer.fast_dev_run=true'])\n"
            "print(cfg.model.lrn.enabled, cfg.data.pixel_max, cfg.trainer.fast_dev_run)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["False", "255.0", "True"]


def test_unknown_trainer_argument_fails_at_composition(tmp_path):
    from hydra.errors import ConfigCompositionException

    from conftest import compose_train

    with pytest.raises(ConfigCompositionException) as e:
        compose_train([*TINY, "trainer.fast_dev_runn=1"], tmp_path, tmp_path)
    assert "Key 'fast_dev_runn' not in 'TrainerConfig'" in str(e.value.__cause__)


def test_stuck_at_chance_stop_under_ddp_stops_every_rank(tmp_path, cache_dir):
    """lr 0: both ranks sit at chance; the reduced decision stops both after the check, and nobody hangs."""
    out = tmp_path / "ddp"
    args = [*TINY, "trainer=ddp_cpu", "trainer.devices=2", "model.optimizer.lr=0", "callbacks.chance.after_steps=2",
            "callbacks.chance.window=2", "callbacks.chance.stop=true", "trainer.max_epochs=5", "test=false",
            f"hydra.run.dir={out}"]
    proc = run_cli(args, tmp_path, cache_dir, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "STUCK AT CHANCE" in proc.stderr
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["global_step"] <= 3 and state["epoch"] == 0  # stopped right after the check, not after 5 epochs


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130)])
def test_a_signal_stops_training_with_its_exit_code(sig, code, tmp_path, cache_dir):
    """Ctrl-C never looks like a success: exit 130, and the W&B run is marked failed (exit code 1), not finished.
    SIGTERM (exit 143, W&B failed): test_resume.py's kill and W&B tests."""
    env = {**os.environ, "ALEXNET_LIT_CACHE": str(cache_dir), "WANDB_MODE": "offline"}
    run_dir = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "train.py"), *TINY, "logger=default", "trainer.max_epochs=100", "test=false",
           "model.scheduler.max_lr_reductions=null", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 180
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err[-3000:]
    assert f"stopped by {signal.Signals(sig).name} (exit {code})" in err and "Traceback" not in err
    summary = subprocess.run([str(Path(sys.executable).parent / "wandb"), "leet", "inspect", "--summary", "--json",
                              str(next(run_dir.rglob("offline-run-*")))], capture_output=True, text=True, timeout=60)
    state = json.loads(summary.stdout)
    assert (state["state"], state["exit_code"]) == ("failed", 1)
