"""Exact resume, with real processes killed by real signals: a run killed at any step and resumed with
``ckpt_path=last`` ends bit-identical to the run that was never interrupted.

The tiny config: 10 classes x 12 images = 120, batches of 16, so 7 steps per epoch; 2 epochs = 14 steps; a step
checkpoint every 3 steps (3, 6, 9, 12). A callback written into the test folder kills its own process at a chosen
step, before that step's optimizer update (mid-step, the worst moment), so the moment is exact.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import ROOT, TINY, run_cli

STEPS_PER_EPOCH = 120 // 16
BASE = [*TINY, "trainer.max_epochs=2", "checkpoint_every_n_steps=3", "test=false", "model.scheduler.patience=0",
        "model.scheduler.max_lr_reductions=null"]

KILLER = """
import os, signal
from lightning import pytorch as pl

class KillAt(pl.Callback):
    '''Sends ``sig`` to this process during step ``step`` (0-based), before its optimizer update.'''
    def __init__(self, step: int, sig: str = "SIGKILL") -> None:
        self.step, self.sig = step, sig
        self.sent = False
    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.global_step == self.step and not self.sent:
            self.sent = True
            os.kill(os.getpid(), getattr(signal, self.sig))
"""


@pytest.fixture
def killer(tmp_path) -> dict:
    (tmp_path / "killer.py").write_text(textwrap.dedent(KILLER))
    return {"PYTHONPATH": str(tmp_path)}


def train(tmp_path, cache_dir, args, env=None, timeout=300) -> subprocess.CompletedProcess:
    return run_cli([*BASE, f"paths.log_dir={tmp_path / 'logs'}", *args], tmp_path, cache_dir, timeout=timeout,
                   env=env)


def run_folder(tmp_path, run_id: str) -> Path:
    return tmp_path / "logs" / "default" / "runs" / run_id


def assert_same_run(a: Path, b: Path) -> None:
    """Every tensor of the model and of the optimizer, and the logged validation errors, bit for bit."""
    sa = torch.load(a / "checkpoints" / "last.ckpt", weights_only=True)
    sb = torch.load(b / "checkpoints" / "last.ckpt", weights_only=True)
    assert sa["global_step"] == sb["global_step"] == 2 * STEPS_PER_EPOCH
    diffs = {k: (sa["state_dict"][k] - sb["state_dict"][k]).abs().max().item() for k in sa["state_dict"]
             if not torch.equal(sa["state_dict"][k], sb["state_dict"][k])}
    assert not diffs, f"{len(diffs)} of {len(sa['state_dict'])} tensors differ, max abs difference {max(diffs.values())}"
    for (_, ta), (_, tb) in zip(sorted(sa["optimizer_states"][0]["state"].items()),
                                sorted(sb["optimizer_states"][0]["state"].items())):
        assert all(torch.equal(ta[k], tb[k]) for k in ta)
    assert sa["optimizer_states"][0]["param_groups"] == sb["optimizer_states"][0]["param_groups"]
    assert val_errors(a) == val_errors(b)


def val_errors(run: Path) -> list[tuple[int, str]]:
    with open(run / "csv" / "metrics.csv") as f:
        return [(int(r["step"]), r["val/top1_err"]) for r in csv.DictReader(f) if r.get("val/top1_err")]


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
    (0, 10, "SIGKILL", -signal.SIGKILL),
    (2, STEPS_PER_EPOCH, "SIGKILL", -signal.SIGKILL),  # the first step of epoch 1: resumes from last.ckpt
    (2, 4, "SIGTERM", 143),  # checkpoints at the end of that step, in epoch 0
])
def test_killed_and_resumed_equals_uninterrupted(workers, kill_step, sig, exit_code, uninterrupted, killer, tmp_path,
                                                 cache_dir):
    args = ["run_id=b", f"data.num_workers={workers}"]
    first = train(tmp_path, cache_dir, [*args, "+callbacks.kill._target_=killer.KillAt",
                                        f"+callbacks.kill.step={kill_step}", f"+callbacks.kill.sig={sig}"], env=killer)
    assert first.returncode == exit_code, first.stderr[-3000:]
    folder = run_folder(tmp_path, "b")
    newest = max(folder.glob("checkpoints/*.ckpt"), key=lambda p: p.stat().st_mtime_ns)
    saved_step = torch.load(newest, weights_only=True)["global_step"]
    if sig == "SIGTERM":  # saved where the signal landed, at the end of the step
        assert newest.name == "interrupted.ckpt" and saved_step == kill_step + 1
        assert f"saved {newest}" in first.stderr
    else:
        assert saved_step == (kill_step if kill_step == STEPS_PER_EPOCH else kill_step // 3 * 3)

    resumed = train(tmp_path, cache_dir, [*args, "ckpt_path=last"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {newest}" in resumed.stderr + resumed.stdout
    assert sorted(p.name for p in (tmp_path / "logs" / "default" / "runs").iterdir()) == ["b"]  # one run folder
    assert_same_run(uninterrupted[workers], folder)
    with open(folder / "csv" / "metrics.csv") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f) if r.get("train/loss")]
    assert steps == sorted(set(steps))  # one CSV, each logged step once


def test_ckpt_path_last_without_a_checkpoint_is_an_error_naming_the_folder(tmp_path, cache_dir):
    proc = train(tmp_path, cache_dir, ["run_id=nothing", "ckpt_path=last"])
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ckpt_path=last: no checkpoint in ")
    assert str(run_folder(tmp_path, "nothing") / "checkpoints") in proc.stderr


def test_w_and_b_resumes_the_same_run(killer, tmp_path, cache_dir):
    """The interrupted start is marked failed (exit 143), the resumed one continues the same W&B run id and
    finishes; both in the run folder's wandb/."""
    args = ["run_id=w", "logger=default"]
    first = train(tmp_path, cache_dir, [*args, "+callbacks.kill._target_=killer.KillAt", "+callbacks.kill.step=4",
                                        "+callbacks.kill.sig=SIGTERM"], env=killer)
    assert first.returncode == 143, first.stderr[-3000:]
    resumed = train(tmp_path, cache_dir, [*args, "ckpt_path=last"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    folder = run_folder(tmp_path, "w")
    run_id = (folder / "wandb" / "run_id").read_text().strip()
    starts = sorted(folder.glob("wandb/offline-run-*"))
    assert len(starts) == 2 and all(p.name.endswith(f"-{run_id}") for p in starts)
    wandb = str(Path(sys.executable).parent / "wandb")
    states = [json.loads(subprocess.run([wandb, "leet", "inspect", "--summary", "--json", str(p)],
                                        capture_output=True, text=True, timeout=60).stdout) for p in starts]
    assert [(s["state"], s["exit_code"]) for s in states] == [("failed", 1), ("finished", 0)]


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
