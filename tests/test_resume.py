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
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from conftest import TINY, run_cli

STEPS_PER_EPOCH = 120 // 16
BASE = [*TINY, "trainer.max_epochs=2", "checkpoint_every_n_steps=3", "test=false", "model.scheduler.patience=0",
        "model.scheduler.max_lr_reductions=null"]

KILLER = """
import os, signal
from lightning import pytorch as pl

class KillAt(pl.Callback):
    '''Sends ``sig`` to this process during step ``step`` (0-based), before its optimizer update (on every rank,
    or on ``rank`` only).'''
    def __init__(self, step: int, sig: str = "SIGKILL", rank: int | None = None) -> None:
        self.step, self.sig, self.rank = step, sig, rank
        self.sent = False
    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.rank is not None and trainer.global_rank != self.rank:
            return
        if trainer.global_step == self.step and not self.sent:
            self.sent = True
            os.kill(os.getpid(), getattr(signal, self.sig))

class SignalInValidation(pl.Callback):
    '''SIGTERM after the first validation batch of epoch ``epoch`` (not the sanity check).'''
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking and trainer.current_epoch == self.epoch and batch_idx == 0:
            os.kill(os.getpid(), signal.SIGTERM)
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
    (0, 10, "SIGKILL", -signal.SIGKILL),
    (2, STEPS_PER_EPOCH, "SIGKILL", -signal.SIGKILL),  # the first step of epoch 1: resumes from last.ckpt
    (2, 4, "SIGTERM", 143),  # checkpoints at the end of that step, in epoch 0
    (0, 9, "SIGINT", 130),
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
    kinds = {p.name: torch.load(p, weights_only=True)["global_step"] for p in folder.glob("checkpoints/*.ckpt")}
    assert {"step.ckpt", "best-epoch000.ckpt", "last.ckpt"} <= set(kinds) or kill_step < STEPS_PER_EPOCH
    if sig in ("SIGTERM", "SIGINT"):  # saved where the signal landed, at the end of the step
        assert newest.name == "interrupted.ckpt" and saved_step == kill_step + 1
        assert f"saved {newest}" in first.stderr
    else:
        assert saved_step == (kill_step if kill_step == STEPS_PER_EPOCH else kill_step // 3 * 3)

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


def test_a_fresh_start_into_a_run_folder_with_checkpoints_is_refused(tmp_path, cache_dir):
    first = train(tmp_path, cache_dir, ["run_id=x", "trainer.max_epochs=1"])
    assert first.returncode == 0, first.stderr[-3000:]
    again = train(tmp_path, cache_dir, ["run_id=x", "trainer.max_epochs=1"])
    assert again.returncode == 2
    assert again.stderr.startswith(f"error: the run folder {run_folder(tmp_path, 'x')} already holds ")
    assert "resume it with ckpt_path=last, or start a new run with another run_id" in again.stderr


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


def finite(path: Path) -> bool:
    state = torch.load(path, weights_only=True)
    return all(torch.isfinite(t).all() for t in state["state_dict"].values())


@pytest.mark.parametrize("check_every", [1, 50])
def test_a_diverging_run_stops_with_an_error_and_keeps_its_good_checkpoints(check_every, tmp_path, cache_dir):
    """Epoch 0 trains normally; resumed with lr=1e6 (a changed setting: applied, and said), the loss goes NaN:
    exit 1, one error line naming the step and the last good checkpoint, no checkpoint of non-finite weights, and
    last.ckpt of epoch 0 untouched. Checked every step, or every 50 (then the check before each checkpoint write,
    every step here, is what stops it)."""
    first = train(tmp_path, cache_dir, ["run_id=d", "trainer.max_epochs=1", "checkpoint_every_n_steps=null"])
    assert first.returncode == 0, first.stderr[-3000:]
    folder = run_folder(tmp_path, "d")
    last = folder / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    diverged = train(tmp_path, cache_dir, ["run_id=d", "ckpt_path=last", "model.optimizer.lr=1e6",
                                           "checkpoint_every_n_steps=1", f"trainer.log_every_n_steps={check_every}"])
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


def test_a_changed_optimizer_rule_or_seed_is_refused_on_resume(tmp_path, cache_dir):
    first = train(tmp_path, cache_dir, ["run_id=r", "trainer.max_epochs=1"])
    assert first.returncode == 0, first.stderr[-3000:]
    rule = train(tmp_path, cache_dir, ["run_id=r", "ckpt_path=last", "model.optimizer.name=paper"])
    assert rule.returncode == 2 and "was trained with model.optimizer.name=sgd, not paper" in rule.stderr
    seed = train(tmp_path, cache_dir, ["run_id=r", "ckpt_path=last", "seed=7"])
    assert seed.returncode == 2 and "was trained with seed=0, not 7" in seed.stderr


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


# --- DDP: 2 gloo processes; 120 images / 2 ranks / 16 = 3 steps per epoch ---------------------------------------
DDP = ["trainer=ddp_cpu", "trainer.devices=2", "checkpoint_every_n_steps=2"]


def test_ddp_killed_mid_epoch_and_resumed_equals_uninterrupted_ddp(killer, tmp_path, cache_dir):
    a = train(tmp_path, cache_dir, [*DDP, "run_id=a"])
    assert a.returncode == 0, a.stderr[-3000:]
    kill = ["+callbacks.kill._target_=killer.KillAt", "+callbacks.kill.step=4"]  # epoch 1, after step.ckpt (4)
    b = train(tmp_path, cache_dir, [*DDP, "run_id=b", *kill], env=killer)
    assert b.returncode == -signal.SIGKILL, b.stderr[-3000:]
    resumed = train(tmp_path, cache_dir, [*DDP, "run_id=b", "ckpt_path=last"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    sa, sb = (torch.load(run_folder(tmp_path, r) / "checkpoints" / "last.ckpt", weights_only=True) for r in "ab")
    assert sa["global_step"] == sb["global_step"] == 6
    assert all(torch.equal(sa["state_dict"][k], sb["state_dict"][k]) for k in sa["state_dict"])
    assert val_errors(run_folder(tmp_path, "a")) == val_errors(run_folder(tmp_path, "b"))


def test_ddp_sigterm_to_one_rank_checkpoints_once_and_every_rank_exits_143(killer, tmp_path, cache_dir):
    """SIGTERM to rank 1 alone: the ranks agree at the next step (one collective), rank 0 writes
    interrupted.ckpt, both exit 143; no rank is left waiting in a collective."""
    kill = ["+callbacks.kill._target_=killer.KillAt", "+callbacks.kill.step=2", "+callbacks.kill.sig=SIGTERM",
            "+callbacks.kill.rank=1"]
    proc = train(tmp_path, cache_dir, [*DDP, "run_id=t", "trainer.max_epochs=5", *kill], env=killer, timeout=240)
    assert proc.returncode == 143, proc.stderr[-3000:]
    assert proc.stderr.count("stopped by SIGTERM (exit 143)") == 2, proc.stderr[-3000:]
    assert proc.stderr.count("SIGTERM: saved ") == 1 and "Traceback" not in proc.stderr
    state = torch.load(run_folder(tmp_path, "t") / "checkpoints" / "interrupted.ckpt", weights_only=True)
    assert state["global_step"] == 3


def test_one_process_and_two_ddp_ranks_train_the_same_network(tmp_path, cache_dir):
    """Same seed, same global batch (32 = 2 x 16), dropout 0: the same images, crops and lighting reach the same
    step (order.py), so the weights agree to float tolerance and the validation errors exactly."""
    common = ["model.dropout=0", "checkpoint_every_n_steps=null"]
    one = train(tmp_path, cache_dir, [*common, "run_id=one", "data.batch_size=32"])
    two = train(tmp_path, cache_dir, [*common, "run_id=two", "trainer=ddp_cpu", "trainer.devices=2"])
    assert one.returncode == 0 and two.returncode == 0, (one.stderr + two.stderr)[-3000:]
    s1, s2 = (torch.load(run_folder(tmp_path, r) / "checkpoints" / "last.ckpt", weights_only=True)
              for r in ("one", "two"))
    assert s1["global_step"] == s2["global_step"] == 6
    worst = max((s1["state_dict"][k] - s2["state_dict"][k]).abs().max().item() for k in s1["state_dict"])
    assert worst < 1e-5
    assert val_errors(run_folder(tmp_path, "one")) == val_errors(run_folder(tmp_path, "two"))


def test_each_ddp_rank_draws_its_own_dropout_masks_and_the_towers_of_a_pair_the_same():
    from alexnet_lit.callbacks import StepSeed
    from alexnet_lit.parallel import TowerParallelStrategy

    def masks(ranks, strategy=None) -> list[torch.Tensor]:
        out = []
        for rank in ranks:
            trainer = SimpleNamespace(current_epoch=0, global_rank=rank, world_size=4, strategy=strategy)
            StepSeed(0).on_train_batch_start(trainer, None, None, batch_idx=3)
            out.append(torch.nn.functional.dropout(torch.ones(1000), 0.5))
        return out

    ddp = masks([0, 1, 0])
    assert not torch.equal(ddp[0], ddp[1]) and torch.equal(ddp[0], ddp[2])
    towers = masks([0, 1, 2, 3], TowerParallelStrategy())  # ranks 0, 1: pair 0; ranks 2, 3: pair 1
    assert torch.equal(towers[0], towers[1]) and torch.equal(towers[2], towers[3])
    assert torch.equal(towers[0], ddp[0]) and not torch.equal(towers[0], towers[2])


# --- SLURM, through submitit ----------------------------------------------------------------------------------
def test_slurm_launcher_config_has_the_cluster_keys():
    from hydra import compose, initialize_config_dir

    from conftest import CONF

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm", "hydra.launcher.nodes=2"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    for key in ("nodes", "gpus_per_node", "tasks_per_node", "timeout_min", "partition", "account", "signal_delay_s"):
        assert key in launcher
    assert launcher.nodes == 2 and launcher.additional_parameters.requeue is True


def test_a_sweep_runs_through_submitit_s_local_launcher(tmp_path, cache_dir):
    """The submitit code path on this machine: each job in a process of its own, started by submitit."""
    proc = run_cli(["-m", "hydra/launcher=submitit_local", *TINY, f"paths.log_dir={tmp_path / 'logs'}", "seed=0,1"],
                   tmp_path, cache_dir, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweeps = list((tmp_path / "logs" / "multiruns").iterdir())
    assert len(sweeps) == 1, sweeps  # every job in the sweep's one folder, though each resolved it on its own
    jobs = sorted(sweeps[0].glob("*_default"))
    assert [p.name for p in jobs] == ["0_default", "1_default"]
    assert all((p / "checkpoints" / "last.ckpt").is_file() for p in jobs)
    assert list((tmp_path / "logs" / "multiruns").glob("*/.submitit/*/*_result.pkl"))


def test_in_a_submitit_job_our_handler_owns_the_timeout_signal(killer, tmp_path, cache_dir):
    """submitit installs its own SIGUSR2 handler in the job process (resubmit, no training state saved); ours
    replaces it: the job checkpoints at the step boundary and requeues itself through scontrol."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'scontrol.log'}\n")
    (bin_dir / "scontrol").chmod(0o755)
    env = {**killer, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "77"}
    proc = run_cli(["-m", "hydra/launcher=submitit_local", *BASE, f"paths.log_dir={tmp_path / 'logs'}",
                    "+callbacks.kill._target_=killer.KillAt", "+callbacks.kill.step=10", "+callbacks.kill.sig=SIGUSR2"],
                   tmp_path, cache_dir, timeout=300, env=env)
    assert proc.returncode != 0  # the job ended to be requeued: not a success
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", "77"]
    saved = list((tmp_path / "logs" / "multiruns").glob("*/0_default/checkpoints/interrupted.ckpt"))
    assert len(saved) == 1 and torch.load(saved[0], weights_only=True)["global_step"] == 11


def test_the_trainer_writes_atomically_into_the_run_folder_and_leaves_signals_to_us(tmp_path):
    import signal as signals_module

    from alexnet_lit.checkpoint import AtomicCheckpointIO
    from alexnet_lit.signals import install_handlers
    from alexnet_lit.trainer import make_trainer
    from conftest import compose_train

    cfg = compose_train([*TINY], tmp_path / "run", tmp_path / "cache")
    trainer = make_trainer(cfg, [], str(tmp_path / "run"))
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
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


def test_ddp_divergence_stops_every_rank_with_the_error(tmp_path, cache_dir):
    proc = train(tmp_path, cache_dir, [*DDP, "run_id=n", "model.optimizer.lr=1e6"], timeout=240)
    assert proc.returncode == 1, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: train/loss is not finite")]
    assert len(errors) == 2, proc.stderr[-3000:]  # rank 0 and rank 1, each its own line, at the same step
    assert len({line.split(" (checked")[0] for line in errors}) == 1


def test_data_loader_workers_have_the_configured_timeout(tmp_path):
    """A stuck worker fails the run after data.timeout seconds instead of hanging it (torch's own error)."""
    from alexnet_lit.data import AlexNetDataModule

    dm = AlexNetDataModule(source="generated", num_classes=4, resize_size=72, crop_size=64, batch_size=4,
                           num_workers=2, timeout=7, cache_dir=str(tmp_path), pixel_max=1,
                           generated={"classes": 4, "train_per_class": 2, "val_per_class": 1})
    dm.prepare_data()
    dm.setup("fit")
    assert dm.train_dataloader().timeout == 7 and dm.val_dataloader().timeout == 7
