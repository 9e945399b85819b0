"""Every mistake a user makes gets one line ``error: <key or file>: ...`` on stderr and exit 2, before any work:
no traceback, no run folder, no generated data, no W&B run. The entry points run as users run them (their
``main()``, which composes, checks and runs the Hydra app), in-process for speed; a few run as real processes."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT, run_cli, run_in_process

PAPER_STORE = ["+experiment=paper"]  # reads data.root as a store (data=imagenet_prepared)


def tiny_checkpoint(path: Path, **model) -> Path:
    """A checkpoint as train.py writes one (state_dict + every model key), of the tiny network."""
    from alexnet_lit.module import AlexNetModule

    m = AlexNetModule(width=0.0625, fc_units=32, num_classes=10, input_size=64, **model)
    torch.save({"state_dict": m.state_dict(), "hyper_parameters": dict(m.hparams), "epoch": 0}, path)
    return path


def setup_files(tmp: Path) -> dict[str, str]:
    """The files the cases below point at."""
    good = tiny_checkpoint(tmp / "good.ckpt")
    data = good.read_bytes()
    (tmp / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    (tmp / "empty.ckpt").write_bytes(b"")
    (tmp / "text.ckpt").write_text("not a checkpoint\n")
    torch.save({"state_dict": {}, "hyper_parameters": {}, "args": argparse.Namespace(a=1)}, tmp / "unsafe.ckpt")
    tiny_checkpoint(tmp / "wide.ckpt", channels_last=False)
    state = torch.load(tmp / "wide.ckpt", weights_only=True)
    state["hyper_parameters"]["width"] = 0.125
    torch.save(state, tmp / "wide.ckpt")
    (tmp / "a_file").write_text("")
    for split in ("train", "val"):  # an ImageNet folder with a class that is not a wnid
        (tmp / "cats" / split / "cats").mkdir(parents=True)
    from PIL import Image

    from alexnet_lit.data.classes import wnids

    for split in ("train", "val"):  # three real images: fewer than one batch of 16
        d = tmp / "few" / split / wnids()[0]
        d.mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (80, 80), (i * 50, 20, 20)).save(d / f"{i}.JPEG")
    (tmp / "store").mkdir()
    (tmp / "store" / "manifest.json").write_text('{"source": "x", "complete": true}')
    return {"tmp": str(tmp)}


# (entry point, arguments, what the single error line must contain). {tmp} is the test's folder.
CASES = [
    # schema: keys, types, choices, ranges (the range lives next to the default, config/)
    ("train", ["model.optimizer.lr=-1"], "error: model.optimizer.lr=-1.0: must be >= 0"),
    ("train", ["model.optimizer.momentum=-0.5"], "error: model.optimizer.momentum=-0.5: must be in [0, 1)"),
    ("train", ["model.optimizer.weight_decay=-1"], "error: model.optimizer.weight_decay=-1.0: must be >= 0"),
    ("train", ["model.scheduler.factor=1"], "error: model.scheduler.factor=1.0: must be in (0, 1)"),
    ("train", ["data.batch_size=0"], "error: data.batch_size=0: must be >= 1"),
    ("train", ["data.num_workers=-1"], "error: data.num_workers=-1: must be >= 0"),
    ("train", ["trainer.accumulate_grad_batches=0"], "error: trainer.accumulate_grad_batches=0: must be >= 1"),
    ("train", ["model.lrn.size=0"], "error: model.lrn.size=0: must be >= 1"),
    ("train", ["data.generated.classes=11", "data.num_classes=11"],
     "error: data.generated.classes=11: must be in [2, 10]"),
    ("train", ["data.generated.classes=1"], "error: data.num_classes=1: must be >= 2"),
    ("train", ["data.pixel_max=0"], "error: data.pixel_max=0.0: must be > 0"),
    ("train", ["seed=-1"], "error: seed=-1: must be in [0, 4294967295]"),
    ("train", ["checkpoint_every_n_steps=0"], "error: checkpoint_every_n_steps=0: must be >= 1"),
    ("train", ["checkpoint_every_minutes=0"], "error: checkpoint_every_minutes=0.0: must be > 0"),
    ("train", ["data.timeout=-1"], "error: data.timeout=-1.0: must be >= 0"),
    ("train", ["+model.widht=0.5"], "error: model.widht: Key 'widht' not in 'ModelConfig'"),
    ("train", ["model.foo=1"], "error: model.foo: Key 'foo' not in 'ModelConfig'"),
    ("train", ["model.dropout=high"], "error: model.dropout: Value 'high' of type 'str' could not be converted"),
    ("train", ["model.dropout=1"], "error: model.dropout=1.0: must be in [0, 1)"),
    ("train", ["model.towers=three"],
     "error: model.towers: Invalid value 'three', expected one of [two, one_half, one]"),
    ("train", ["trainer.fast_dev_runn=1"], "error: trainer.fast_dev_runn: Key 'fast_dev_runn' not in 'TrainerConfig'"),
    # the command line and the groups
    ("train", ["experiment=paper"], "error: experiment=paper: add a +, as in +experiment=paper"),
    ("train", ["+experiment=nope"], "error: In 'train': Could not find 'experiment/nope'; available: caffe_init"),
    # combinations and the network's geometry
    ("train", ["model.width=0.3"], "error: model.towers=two splits every conv layer across two towers"),
    ("train", ["data.crop_size=80"], "error: data.crop_size=80 is larger than data.resize_size=72"),
    ("train", ["data.num_classes=7"], "error: data.generated.classes=10 differs from data.num_classes=7"),
    ("train", ["data.crop_size=48"], "error: model.input_size=48 (data.crop_size) is too small for the paper's"),
    ("train", ["data.batch_size=200"], "error: data.batch_size=200 is more than the 120 generated training images"),
    ("train", ["+experiment=quickstart", "callbacks.progress.style=fancy"],
     "error: callbacks.progress.style=fancy: must be one of auto, rich, tqdm, lines"),
    ("train", ["data.augment_on=device"], "error: data.augment_on=device cuts the crops from the prepared store"),
    ("train", ["trainer=towers_cpu", "model.towers=one_half"],
     "error: trainer=towers puts the paper's two towers on two devices: it needs model.towers=two, not "
     "model.towers=one_half"),
    ("train", ["trainer=towers_cpu", "trainer.devices=3"],
     "error: trainer=towers needs 2 processes per tower pair (2 x N for N data-parallel pairs): trainer.devices"),
    # cuda-convnet's CIFAR nets (model.arch=cifar_*) and AlexNet's switches
    ("train", ["+experiment=figure1", "model.towers=two"],
     "error: model.towers=two is a switch of AlexNet's; model.arch=cifar_80sec takes its layers from cuda-convnet's"),
    ("describe", ["+experiment=figure1", "model.dropout=0.5"], "error: model.dropout=0.5 is a switch of AlexNet's"),
    ("train", ["+experiment=figure1", "model.init=paper"], "error: model.init=paper is AlexNet's per-layer table"),
    ("train", ["+experiment=figure1", "model.lrn.enabled=true"],
     "error: model.lrn.enabled=true: model.arch=cifar_80sec has no response-normalization layer"),
    ("train", ["+experiment=figure1", "data.ten_crop=true"],
     "error: data.ten_crop=true with data.crop_size = data.resize_size = 32: the ten views of a whole image are two"),
    ("train", ["+experiment=figure1", "model=cifar_11pct", "data.crop_size=2"],
     "error: model.input_size=2 (data.crop_size) is too small for model.arch=cifar_11pct"),
    ("train", ["model.init=cuda_convnet"], "error: model.init=cuda_convnet is the CIFAR nets' layer-file init"),
    ("train", ["model.optimizer.weight_decay=null"], "error: model.optimizer.weight_decay=null takes each layer's"),
    # files: the checkpoint to resume from
    ("train", ["ckpt_path={tmp}/missing.ckpt"], "error: ckpt_path={tmp}/missing.ckpt: no such file"),
    ("train", ["ckpt_path={tmp}"], "error: ckpt_path={tmp} is a folder: give a .ckpt file"),
    ("train", ["ckpt_path={tmp}/empty.ckpt"], "error: ckpt_path={tmp}/empty.ckpt is empty (0 bytes"),
    ("train", ["ckpt_path={tmp}/truncated.ckpt"], "error: ckpt_path={tmp}/truncated.ckpt is not a readable checkpoint"),
    ("train", ["ckpt_path={tmp}/text.ckpt"], "error: ckpt_path={tmp}/text.ckpt is not a readable checkpoint"),
    ("train", ["ckpt_path={tmp}/unsafe.ckpt"], "error: ckpt_path={tmp}/unsafe.ckpt holds objects a safe load refuses"),
    ("train", ["ckpt_path={tmp}/wide.ckpt"], "model.width=0.125 (checkpoint) vs 0.0625 (now)"),
    # files: data
    ("train", [*PAPER_STORE, "data.root=/wrong"], "error: data.root=/wrong: no such folder"),
    ("train", [*PAPER_STORE, "data.root={tmp}/few"],
     "error: {tmp}/few/manifest.json not found: data.root must be a folder made by alexnet-prepare"),
    ("train", ["data=imagenet", "data.root={tmp}/nowhere"], "error: data.root={tmp}/nowhere: no such folder"),
    ("train", ["data=imagenet", "data.root={tmp}/cats"], "error: {tmp}/cats/train/cats: not an ILSVRC-2012 wnid"),
    ("train", ["data=imagenet", "data.root={tmp}/store"], "is a store made by alexnet-prepare, not image folders: "
                                                          "add data=imagenet_prepared"),
    ("train", ["data=imagenet", "data.root={tmp}/few", "data.resize_size=72", "data.crop_size=64"],
     "error: data.batch_size=128 is more than the 3 training images in data.root={tmp}/few: no full batch"),
    # folders the run writes
    ("train", ["paths.log_dir={tmp}/a_file/logs"], "error: paths.output_dir (the run folder, in paths.log_dir)="),
    ("train", ["data.cache_dir={tmp}/a_file/cache"], "error: data.cache_dir ($ALEXNET_LIT_CACHE)={tmp}/a_file/cache"),
    # the other entry points
    ("eval", [], "error: ckpt_path is not set: alexnet-eval ckpt_path="),
    ("eval", ["ckpt_path={tmp}/truncated.ckpt"], "error: ckpt_path={tmp}/truncated.ckpt is not a readable checkpoint"),
    ("eval", ["ckpt_path={tmp}/good.ckpt", "data.num_classes=7", "data.generated.classes=7"],
     "has 10 classes but data.num_classes=7"),
    ("describe", ["model.width=0.3"], "error: model.towers=two splits every conv layer"),
    ("describe", ["trainer=towers_cpu", "model.towers=one"], "error: trainer=towers puts the paper's two towers"),
    ("train", ["trainer=towers_cpu", "model.compile=true"],
     "error: model.compile=true is not supported with trainer=towers"),
    ("prepare", [], "error: root and out_dir not set: alexnet-prepare root="),
    ("prepare", ["root={tmp}/nowhere", "out_dir={tmp}/out"], "error: root={tmp}/nowhere: no such folder"),
    ("prepare", ["root={tmp}/cats", "out_dir={tmp}/out", "workers=0"], "error: workers=0: must be >= 1"),
]
NEEDS_TINY = {"train", "eval", "describe"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return setup_files(tmp_path_factory.mktemp("files"))


@pytest.mark.parametrize("name, args, message", CASES, ids=[f"{c[0]}:{' '.join(c[1]) or '-'}" for c in CASES])
def test_user_error_is_one_line_exit_2_before_any_work(name, args, message, files, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALEXNET_LIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    # the tiny debug run, unless the case picks the recipe or data itself (debug=tiny would replace its data)
    own = any(a.startswith(("+experiment=", "data=")) for a in args)
    argv = (["+debug=tiny"] if name in NEEDS_TINY and not own else []) + [a.format(**files) for a in args]
    code, err = run_in_process(name, argv, monkeypatch, capsys)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert message.format(**files) in lines[0], lines[0]
    assert "Traceback" not in err and "weights_only=False" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "the failed command created files"


def test_a_full_disk_is_found_before_any_work(files, tmp_path, monkeypatch, capsys):
    import collections

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALEXNET_LIT_CACHE", str(tmp_path / "cache"))
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 * 2**20, 9 * 2**20, 2**20))
    code, err = run_in_process("train", ["+debug=tiny"], monkeypatch, capsys)
    assert code == 2 and "MiB free in" in err and "the run needs about" in err, err
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs a read-only file system at /sys (Linux)")
def test_a_read_only_log_folder_is_found_before_any_work(tmp_path):
    """A real process; /sys refuses writes even to root (chmod does not stop root, so it cannot stand in)."""
    proc = run_cli(["+debug=tiny", "paths.log_dir=/sys/alexnet-lit-logs"], tmp_path, tmp_path / "cache")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: paths.output_dir (the run folder, in paths.log_dir)=/sys/alexnet-lit-logs")
    assert "cannot write in /sys" in proc.stderr and proc.stderr.count("\n") == 1
    assert not (tmp_path / "cache").exists()


def test_a_sweep_runs_the_good_jobs_and_reports_the_bad_one_at_the_end(tmp_path, cache_dir):
    proc = run_cli(["-m", "+debug=tiny", "model.optimizer.lr=-1,0.01", "trainer.limit_train_batches=1",
                    "trainer.limit_val_batches=1", "test=false"], tmp_path, cache_dir)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: sweep job +debug=tiny model.optimizer.lr=-1 trainer.limit_train_batches=1 "
                      "trainer.limit_val_batches=1 test=False: model.optimizer.lr=-1.0: must be >= 0"], proc.stderr
    jobs = sorted(p.name for p in (tmp_path / "logs" / "multiruns").glob("*/*") if p.is_dir())
    assert jobs == ["1_default"]  # the bad job's folder is gone; the good one ran
    assert (next((tmp_path / "logs" / "multiruns").glob("*/1_default")) / "checkpoints" / "last.ckpt").is_file()


def test_a_bad_image_met_while_training_on_the_fly_is_one_line(tmp_path, cache_dir):
    """Found after work has started (data=imagenet decodes on the fly): still one line naming the file, exit 2;
    with data.skip_bad=true the run leaves it out, names it, and finishes."""
    from PIL import Image

    from alexnet_lit.data.classes import wnids

    for split in ("train", "val"):
        d = tmp_path / "raw" / split / wnids()[3]
        d.mkdir(parents=True)
        for i in range(8):
            Image.new("RGB", (90, 80), (i * 30, 90, 20)).save(d / f"{i}.JPEG")
    bad = tmp_path / "raw" / "train" / wnids()[3] / "3.JPEG"
    bad.write_bytes(bad.read_bytes()[:100])
    args = ["+debug=tiny", "data=imagenet", f"data.root={tmp_path / 'raw'}", "data.resize_size=72", "data.crop_size=64",
            "data.batch_size=4", "data.num_workers=1", "test=false"]
    proc = run_cli(args, tmp_path, cache_dir)
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {bad}: cannot decode (") and \
        errors[0].endswith("remove or replace the file"), proc.stderr
    assert "Traceback" not in proc.stderr
    skipped = run_cli([*args, "data.skip_bad=true"], tmp_path, cache_dir)
    assert skipped.returncode == 0, skipped.stderr[-3000:]
    assert f"data.skip_bad=true: leaving out {bad}: cannot decode" in skipped.stderr


def test_the_real_processes_exit_2_with_one_line(tmp_path):
    """The installed commands, as a user meets them (the cases above run their main() in-process)."""
    exe = Path(sys.executable).parent
    for cmd, args in ((ROOT / "train.py", ["+debug=tiny", "model.optimizer.lr=-1"]), (exe / "alexnet-prepare", [])):
        proc = run_cli(args, tmp_path, tmp_path / "cache", script=str(cmd))
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), \
            proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []
