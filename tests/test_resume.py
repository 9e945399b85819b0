"""Exact resume, with real processes killed by real signals: a run killed at any step and resumed with
``ckpt_path=last`` ends bit-identical to the run that was never interrupted.

The tiny config: 10 classes x 12 images = 120, batches of 16, so 7 steps per epoch; 2 epochs = 14 steps; a step
checkpoint every 3 steps (3, 6, 9, 12). A callback written into the test folder (conftest.py: ``killer``) kills its
own process at a chosen step, before that step's optimizer update (mid-step, the worst moment), so the moment is
exact. DDP, SLURM and submitit: test_resume_ddp.py.
"""

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

from conftest import TINY, compose_train, run_cli, run_in_process

STEPS_PER_EPOCH = 120 // 16
BASE = [*TINY, "trainer.max_epochs=2", "checkpoint_every_n_steps=3", "test=false", "model.scheduler.patience=0",
        "model.scheduler.max_lr_reductions=null"]

def train(tmp_path, cache_dir, args, env=None, timeout=300) -> subprocess.CompletedProcess:
    return run_cli([*BASE, f"paths.log_dir={tmp_path / 'logs'}", *args], tmp_path, cache_dir, timeout=timeout,
                   env=env)


def train_here(tmp_path, cache_dir, run_id: str, args: list[str]) -> dict[str, float]:
    """The same run as ``train`` in this process (no new interpreter to start): for the reference runs of one
    process that a test compares against, where a real process is not the point."""
    from alexnet_lit.cli.train import run

    args = [*BASE, f"paths.log_dir={tmp_path / 'logs'}", f"run_id={run_id}", *args]
    return run(compose_train(args, run_folder(tmp_path, run_id), cache_dir))


def run_folder(tmp_path, run_id: str) -> Path:
    return tmp_path / "logs" / "default" / "runs" / run_id


def assert_same_run(a: Path, b: Path) -> None:
    """Every tensor of the model and of the optimizer, and the logged validation errors, bit for bit."""
    sa = torch.load(a / "checkpoints" / "last.ckpt", weights_only=True)
    sb = torch.load(b / "checkpoints" / "last.ckpt", weights_only=True)
    assert sa["global_step"] == sb["global_step"] == 2 * STEPS_PER_EPOCH
    diffs = {k: (sa["state_dict"][k] - sb["state_dict"][k]).abs().max().item() for k in sa["state_dict"]
             if not torch.equal(sa["state_dict"][k], sb["state_dict"][k])}
    assert not diffs, f"{len(diffs)} of {len(sa['state_dict'])} tensors differ, max abs {max(diffs.values())}"
    for (_, ta), (_, tb) in zip(sorted(sa["optimizer_states"][0]["state"].items()),
                                sorted(sb["optimizer_states"][0]["state"].items())):
        assert all(torch.equal(ta[k], tb[k]) for k in ta)
    assert sa["optimizer_states"][0]["param_groups"] == sb["optimizer_states"][0]["param_groups"]
    best = [{k: v.get("best_model_score") for k, v in s["callbacks"].items() if "val/top1_err" in k} for s in (sa, sb)]
    assert best[0] == best[1] and all(v is not None for v in best[0].values())  # best-checkpoint tracking
    assert val_errors(a) == val_errors(b)
    assert val_errors(a, "train/top1_err") == val_errors(b, "train/top1_err")  # the resumed epoch's too


def val_errors(run: Path, key: str = "val/top1_err") -> list[tuple[int, str]]:
    with open(run / "csv" / "metrics.csv") as f:
        return [(int(r["step"]), r[key]) for r in csv.DictReader(f) if r.get(key)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, cache_dir) -> dict[int, Path]:
    """Run A, with 2 workers and with 0: one reference each (they must agree with each other too)."""
    out = {}
    for workers in (2, 0):
        tmp = tmp_path_factory.mktemp(f"a{workers}")
        proc = train(tmp, cache_dir, ["run_id=a", f"data.num_workers={workers}"])
        assert proc.returncode == 0, proc.stderr[-3000:]
        out[workers] = run_folder(tmp, "a")
    return out


def test_the_number_of_workers_does_not_change_the_run(uninterrupted):
    assert_same_run(uninterrupted[2], uninterrupted[0])


@pytest.mark.parametrize("workers, kill_step, sig, exit_code", [
    (2, 10, "SIGKILL", -signal.SIGKILL),  # mid epoch 1, 1 step after step.ckpt (9)
    (2, STEPS_PER_EPOCH, "SIGKILL", -signal.SIGKILL),  # the first step of epoch 1: resumes from last.ckpt
    (2, 4, "SIGTERM", 143),  # checkpoints at the end of that step, in epoch 0
    (0, 9, "SIGINT", 130),  # 0 workers: the main process's own data order resumes too
])
def test_killed_and_resumed_equals_uninterrupted(workers, kill_step, sig, exit_code, uninterrupted, killer, tmp_path,
                                                 cache_dir):
    # the SIGTERM case also logs to W&B (offline): the interrupted start is marked failed (exit 143), the resumed
    # one continues the same W&B run id and finishes, both in the run folder's wandb/
    wandb = sig == "SIGTERM"
    args = ["run_id=b", f"data.num_workers={workers}", *(["logger=default"] if wandb else [])]
    first = train(tmp_path, cache_dir, [*args, "+callbacks.kill._target_=killer.KillAt",
                                        f"+callbacks.kill.step={kill_step}", f"+callbacks.kill.sig={sig}"], env=killer)
    assert first.returncode == exit_code, first.stderr[-3000:]
    folder = run_folder(tmp_path, "b")
    newest = max(folder.glob("checkpoints/*.ckpt"), key=lambda p: p.stat().st_mtime_ns)
    saved_step = torch.load(newest, weights_only=True)["global_step"]
    kinds = {p.name: torch.load(p, weights_only=True)["global_step"] for p in folder.glob("checkpoints/*.ckpt")}
    assert {"step.ckpt", "best-epoch000.ckpt", "last.ckpt"} <= set(kinds) or kill_step < STEPS_PER_EPOCH
    if sig in ("SIGTERM", "SIGINT"):  # saved where the signal landed, at the end of the step
        assert newest.name == "interrupted.ckpt" and saved_step == kill_step + 1
        assert f"saved {newest}" in first.stderr and "Traceback" not in first.stderr
        assert f"stopped by {sig} (exit {exit_code})" in first.stderr
    else:
        due = kill_step if kill_step == STEPS_PER_EPOCH else kill_step // 3 * 3
        before = max(s for s in (*range(0, due, 3), STEPS_PER_EPOCH) if s < due)
        assert saved_step in (due, before)  # the one before when the kill landed during the due one's (async) write

    resumed = train(tmp_path, cache_dir, [*args, "ckpt_path=last"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {newest}" in resumed.stderr + resumed.stdout
    assert sorted(p.name for p in (tmp_path / "logs" / "default" / "runs").iterdir()) == ["b"]  # one run folder
    launch = sorted(p.name for p in tmp_path.iterdir() if p.name != "__pycache__")
    assert launch == ["killer.py", "logs"]  # default_root_dir is the run folder: nothing lands in the launch folder
    assert_same_run(uninterrupted[workers], folder)
    with open(folder / "csv" / "metrics.csv") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f) if r.get("train/loss")]
    assert steps == sorted(set(steps))  # one CSV, each logged step once
    if wandb:
        assert_one_wandb_run_failed_then_finished(folder)


def test_a_kill_during_an_asynchronous_write_resumes_from_the_checkpoint_before(uninterrupted, killer, tmp_path,
                                                                              cache_dir):
    """step.ckpt of step 9 hangs half-written (SlowWrite) while training goes on (the kill comes at step 11: a
    write on the training thread would never let it get there); SIGKILL leaves its temporary beside the complete
    checkpoints of step 7 (the epoch's), which the resume takes, bit-identically to the uninterrupted run."""
    first = train(tmp_path, cache_dir, ["run_id=w", "data.num_workers=2", "+callbacks.slow._target_=killer.SlowWrite",
                                        "+callbacks.slow.step=9", "+callbacks.kill._target_=killer.KillAt",
                                        "+callbacks.kill.step=11", "+callbacks.kill.sig=SIGKILL"], env=killer,
                  timeout=120)  # a write on the training thread hangs it: the kill never comes
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    folder = run_folder(tmp_path, "w")
    assert [p.name for p in folder.glob("checkpoints/.step.ckpt.tmp-*")]  # the write in flight at the kill
    steps = {p.name: torch.load(p, weights_only=True)["global_step"] for p in folder.glob("checkpoints/*.ckpt")}
    assert steps == {"step.ckpt": 6, "last.ckpt": STEPS_PER_EPOCH, "best-epoch000.ckpt": STEPS_PER_EPOCH}, steps
    resumed = train(tmp_path, cache_dir, ["run_id=w", "data.num_workers=2", "ckpt_path=last"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not list(folder.glob("checkpoints/.*"))  # the start removed the temporary
    assert_same_run(uninterrupted[2], folder)


def test_the_time_cadence_reads_the_clock_on_logging_steps_only(tmp_path, cache_dir, monkeypatch):
    """checkpoint_every_minutes: due at every step here (1e-9 minutes), saved on the logging steps (every 5th)
    only; 10 minutes: never in a run of seconds."""
    from lightning import pytorch as pl

    from alexnet_lit.cli import train as train_cli

    saved: list[int] = []

    class Saves(pl.Callback):
        def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
            saved.append(trainer.global_step)

    original = train_cli.extra_callbacks
    monkeypatch.setattr(train_cli, "extra_callbacks", lambda *a: [*original(*a), Saves()])
    for minutes, expected in (("1e-9", [5, 10]), ("10", [])):
        saved.clear()
        train_here(tmp_path, cache_dir, f"t{minutes}", [
            "checkpoint_every_n_steps=null", "callbacks.checkpoint=null", "callbacks.last_checkpoint=null",
            "trainer.log_every_n_steps=5", f"checkpoint_every_minutes={minutes}"])
        assert saved == expected


def assert_one_wandb_run_failed_then_finished(folder: Path) -> None:
    run_id = (folder / "wandb" / "run_id").read_text().strip()
    starts = sorted(folder.glob("wandb/offline-run-*"))
    assert len(starts) == 2 and all(p.name.endswith(f"-{run_id}") for p in starts)
    wandb = str(Path(sys.executable).parent / "wandb")
    states = [json.loads(subprocess.run([wandb, "leet", "inspect", "--summary", "--json", str(p)],
                                        capture_output=True, text=True, timeout=60).stdout) for p in starts]
    assert [(s["state"], s["exit_code"]) for s in states] == [("failed", 1), ("finished", 0)]


def test_a_signal_during_validation_checkpoints_there_and_resumes_exactly(uninterrupted, killer, tmp_path,
                                                                          cache_dir):
    """The signal waits for the validation to finish and for the next training step (a checkpoint taken inside a
    validation would resume without it)."""
    args = ["run_id=v", "data.num_workers=2"]
    first = train(tmp_path, cache_dir, [*args, "+callbacks.kill._target_=killer.SignalInValidation",
                                        "+callbacks.kill.epoch=0"], env=killer)
    assert first.returncode == 143, first.stderr[-3000:]
    saved = torch.load(run_folder(tmp_path, "v") / "checkpoints" / "interrupted.ckpt", weights_only=True)
    assert saved["global_step"] == STEPS_PER_EPOCH + 1
    resumed = train(tmp_path, cache_dir, [*args, "ckpt_path=last"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(uninterrupted[2], run_folder(tmp_path, "v"))


def copy_of(uninterrupted, tmp_path, run_id: str) -> Path:
    """The reference run (2 epochs, every kind of checkpoint) copied into this test's logs as run ``run_id``: the
    tests that need a finished run start from it instead of training one."""
    folder = run_folder(tmp_path, run_id)
    shutil.copytree(uninterrupted[2], folder)
    return folder


def in_process(tmp_path, args, monkeypatch, capsys) -> tuple[int, str]:
    monkeypatch.chdir(tmp_path)
    return run_in_process("train", [*BASE, f"paths.log_dir={tmp_path / 'logs'}", *args], monkeypatch, capsys)


def test_a_fresh_start_into_a_run_folder_with_checkpoints_is_refused(uninterrupted, tmp_path, monkeypatch, capsys):
    copy_of(uninterrupted, tmp_path, "x")
    code, err = in_process(tmp_path, ["run_id=x"], monkeypatch, capsys)
    assert code == 2
    assert err.startswith(f"error: the run folder {run_folder(tmp_path, 'x')} already holds ")
    assert "resume it with ckpt_path=last, or start a new run with another run_id" in err


def test_ckpt_path_last_without_a_checkpoint_is_an_error_naming_the_folder(tmp_path, monkeypatch, capsys):
    code, err = in_process(tmp_path, ["run_id=nothing", "ckpt_path=last"], monkeypatch, capsys)
    assert code == 2
    assert err.startswith("error: ckpt_path=last: no checkpoint in ")
    assert str(run_folder(tmp_path, "nothing") / "checkpoints") in err


def test_a_changed_optimizer_rule_or_seed_is_refused_on_resume(uninterrupted, tmp_path, monkeypatch, capsys):
    copy_of(uninterrupted, tmp_path, "r")
    code, err = in_process(tmp_path, ["run_id=r", "ckpt_path=last", "model.optimizer.name=paper"], monkeypatch, capsys)
    assert code == 2 and "was trained with model.optimizer.name=sgd, not paper" in err
    code, err = in_process(tmp_path, ["run_id=r", "ckpt_path=last", "seed=7"], monkeypatch, capsys)
    assert code == 2 and "was trained with seed=0, not 7" in err


def test_a_requeued_slurm_job_checkpoints_requeues_and_resumes(uninterrupted, killer, tmp_path, cache_dir):
    """SLURM's warning signal (sbatch --signal=SIGUSR1@90 --requeue): a checkpoint at the step boundary, then
    `scontrol requeue <job>` (a stand-in on PATH records it), exit 138; the requeued start (same job id,
    SLURM_RESTART_COUNT=1) finds its folder by the job id and resumes without being told to."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'scontrol.log'}\n")
    (bin_dir / "scontrol").chmod(0o755)
    slurm = {**killer, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "4242"}
    first = train(tmp_path, cache_dir, ["+callbacks.kill._target_=killer.KillAt", "+callbacks.kill.step=10",
                                        "+callbacks.kill.sig=SIGUSR1"], env=slurm)
    assert first.returncode == 128 + signal.SIGUSR1, first.stderr[-3000:]
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", "4242"]
    folder = run_folder(tmp_path, "slurm-4242")
    assert (folder / "checkpoints" / "interrupted.ckpt").is_file()
    again = train(tmp_path, cache_dir, [], env={**slurm, "SLURM_RESTART_COUNT": "1"})
    assert again.returncode == 0, again.stderr[-3000:]
    assert_same_run(uninterrupted[2], folder)


def finite(path: Path) -> bool:
    state = torch.load(path, weights_only=True)
    return all(torch.isfinite(t).all() for t in state["state_dict"].values())


@pytest.mark.parametrize("check_every", [1, 50])
def test_a_diverging_run_stops_with_an_error_and_keeps_its_good_checkpoints(check_every, uninterrupted, tmp_path,
                                                                           cache_dir):
    """Epochs 0 and 1 trained normally (the reference run); resumed for a third with lr=1e6 (a changed setting:
    applied, and said), the loss goes NaN: exit 1, one error line naming the step and the last good checkpoint, no
    checkpoint of non-finite weights, and last.ckpt of epoch 1 untouched. Checked every step, or every 50 (then the
    check before each checkpoint write, every step here, is what stops it)."""
    folder = copy_of(uninterrupted, tmp_path, "d")
    last = folder / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    diverged = train(tmp_path, cache_dir, ["run_id=d", "ckpt_path=last", "model.optimizer.lr=1e6",
                                           "trainer.max_epochs=3", "checkpoint_every_n_steps=1",
                                           f"trainer.log_every_n_steps={check_every}"])
    assert diverged.returncode == 1, diverged.stderr[-3000:]
    assert "resumed with changed settings, applied: model.optimizer.lr 0.01 -> 1000000.0" in diverged.stderr
    errors = [line for line in diverged.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in diverged.stderr
    assert errors[0].startswith("error: train/loss is not finite at step ")
    assert ("refusing to write a checkpoint of it" in errors[0]) == (check_every > 1)
    good = errors[0].split("the last good checkpoint is ")[1].split(": resume it with ckpt_path=last")[0]
    assert Path(good).parent == last.parent and finite(Path(good))
    assert last.read_bytes() == before
    assert all(finite(p) for p in folder.glob("checkpoints/*.ckpt"))
    assert not list(folder.glob("checkpoints/.*"))  # no temporary left behind


WRITER = """
import sys, torch
from alexnet_lit.checkpoint import AtomicCheckpointIO
AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.full((int(sys.argv[2]),), float(sys.argv[3]))}},
                                     sys.argv[1])
"""


def test_a_kill_during_a_checkpoint_write_leaves_the_previous_one_intact(tmp_path):
    """A real SIGKILL while a 400 MB checkpoint is being written over an older one: the older one is still whole
    (torch.load reads it), the partial write is a temporary next to it, which the next start removes."""
    from alexnet_lit.checkpoint import remove_temporaries

    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    target = tmp_path / "checkpoints" / "last.ckpt"
    subprocess.run([sys.executable, str(script), str(target), "10", "1"], check=True, timeout=60)
    proc = subprocess.Popen([sys.executable, str(script), str(target), str(100 * 2**20), "2"])
    deadline = time.time() + 60
    while not list(target.parent.glob(".last.ckpt.tmp-*")) and time.time() < deadline:
        time.sleep(0.005)
    time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=30)
    temporaries = list(target.parent.glob(".last.ckpt.tmp-*"))
    assert proc.returncode == -signal.SIGKILL and len(temporaries) == 1
    assert torch.equal(torch.load(target, weights_only=True)["state_dict"]["w"], torch.ones(10))
    assert remove_temporaries(str(target.parent)) == [str(temporaries[0])]
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]


def test_a_failed_write_removes_its_temporary_and_names_the_file(tmp_path, monkeypatch):
    """A full disk during a write (ENOSPC from the file system): one error naming the file, the old checkpoint
    intact, no temporary left."""
    import errno

    from alexnet_lit.checkpoint import AtomicCheckpointIO
    from alexnet_lit.signals import RunFailed

    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"w": torch.ones(3)}, target)

    def full(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(RunFailed, match=f"could not write {target} \\(No space left on device\\); the checkpoint"):
        AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(3)}, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
    assert torch.equal(torch.load(target, weights_only=True)["w"], torch.ones(3))


def test_the_trainer_writes_atomically_into_the_run_folder_and_leaves_signals_to_us(tmp_path):
    import signal as signals_module

    from alexnet_lit.checkpoint import AtomicCheckpointIO, QueuedCheckpointIO
    from alexnet_lit.signals import install_handlers
    from alexnet_lit.trainer import make_trainer
    from conftest import compose_train

    cfg = compose_train([*TINY], tmp_path / "run", tmp_path / "cache")
    trainer = make_trainer(cfg, [], str(tmp_path / "run"))
    io = trainer.strategy.checkpoint_io
    assert isinstance(io, QueuedCheckpointIO) and isinstance(io.checkpoint_io, AtomicCheckpointIO)
    sync = make_trainer(compose_train([*TINY, "checkpoint_async=false"], tmp_path / "run", tmp_path / "cache"), [])
    assert isinstance(sync.strategy.checkpoint_io, AtomicCheckpointIO)
    assert trainer.default_root_dir == str(tmp_path / "run")
    install_handlers()
    ours = signals_module.getsignal(signals_module.SIGTERM)
    trainer._signal_connector.register_signal_handlers()  # what Trainer._run calls
    assert signals_module.getsignal(signals_module.SIGTERM) is ours


def test_the_stuck_at_chance_window_survives_a_checkpoint():
    """A resume inside the window decides on the same losses as the uninterrupted run."""
    from alexnet_lit.callbacks import StuckAtChance

    before = StuckAtChance(after_steps=10, window=4, margin=0.02, stop=False)
    before.losses.extend(torch.tensor([2.30, 2.29, 2.31]).unbind(0))
    after = StuckAtChance(after_steps=10, window=4, margin=0.02, stop=False)
    after.load_state_dict(before.state_dict())
    assert [float(v) for v in after.losses] == [float(v) for v in before.losses] and not after.checked


def test_data_loader_workers_have_the_configured_timeout(tmp_path):
    """A stuck worker fails the run after data.timeout seconds instead of hanging it (torch's own error)."""
    from alexnet_lit.data import AlexNetDataModule

    dm = AlexNetDataModule(source="generated", num_classes=4, resize_size=72, crop_size=64, batch_size=4,
                           num_workers=2, timeout=7, cache_dir=str(tmp_path), pixel_max=1,
                           generated={"classes": 4, "train_per_class": 2, "val_per_class": 1})
    dm.prepare_data()
    dm.setup("fit")
    assert dm.train_dataloader().timeout == 7 and dm.val_dataloader().timeout == 7


def test_queued_writes_see_the_tensors_as_they_were_at_the_save(tmp_path):
    """The snapshot is taken on the training thread: a write still in flight keeps its own copy while the next
    step changes the weights and the next save takes fresh buffers; once the writes are done, buffers are reused
    (copied into, not cloned)."""
    import threading

    from lightning.fabric.plugins import CheckpointIO

    from alexnet_lit.checkpoint import QueuedCheckpointIO

    release, written, history = threading.Event(), {}, []

    class Held(CheckpointIO):
        def save_checkpoint(self, checkpoint, path, storage_options=None):
            if path == "a":
                release.wait(30)
            written[path] = checkpoint["w"].clone()
            history.append((path, checkpoint["w"].tolist()))

        def load_checkpoint(self, *args, **kwargs): ...
        def remove_checkpoint(self, path): written.pop(path)

    io, w = QueuedCheckpointIO(Held()), torch.zeros(4)
    io.save_checkpoint({"w": w, "step": 1}, "a")  # held in flight
    w += 1
    io.save_checkpoint({"w": w, "step": 2}, "b")  # a still writing: fresh buffers, not a's
    first = io._buffers[0]
    w += 1
    release.set()
    io.remove_checkpoint("a")  # queued behind the writes
    io.teardown()
    assert history == [("a", [0.0] * 4), ("b", [1.0] * 4)]  # each as at its save
    assert set(written) == {"b"}  # a removed after its write, not before
    io.save_checkpoint({"w": w, "step": 3}, "c")
    io.teardown()
    assert io._buffers[0] is first and torch.equal(written["c"], torch.full((4,), 2.0))
