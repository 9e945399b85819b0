"""Exact resume across processes: 2 DDP ranks (gloo) killed and resumed, a signal to one rank, one process against
two ranks, divergence on every rank; SLURM's requeue through submitit. The tiny run and the helpers:
test_resume.py."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from conftest import run_cli
from test_resume import BASE, run_folder, train, train_here, val_errors

# --- DDP: 2 gloo processes; 120 images / 2 ranks / 16 = 3 steps per epoch ---------------------------------------
DDP = ["trainer=ddp_cpu", "trainer.devices=2", "checkpoint_every_n_steps=2", "model.dropout=0"]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, cache_dir) -> Path:
    """The uninterrupted 2-rank run (2 epochs, 6 steps; dropout 0, so that one process can equal it too)."""
    tmp = tmp_path_factory.mktemp("ddp")
    proc = train(tmp, cache_dir, [*DDP, "run_id=a"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_folder(tmp, "a")


def test_ddp_killed_mid_epoch_and_resumed_equals_uninterrupted_ddp(ddp_run, killer, tmp_path, cache_dir):
    kill = ["+callbacks.kill._target_=killer.KillAt", "+callbacks.kill.step=4"]  # epoch 1, after step.ckpt (4)
    b = train(tmp_path, cache_dir, [*DDP, "run_id=b", *kill], env=killer)
    assert b.returncode == -signal.SIGKILL, b.stderr[-3000:]
    resumed = train(tmp_path, cache_dir, [*DDP, "run_id=b", "ckpt_path=last"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    sa, sb = (torch.load(f / "checkpoints" / "last.ckpt", weights_only=True)
              for f in (ddp_run, run_folder(tmp_path, "b")))
    assert sa["global_step"] == sb["global_step"] == 6
    assert all(torch.equal(sa["state_dict"][k], sb["state_dict"][k]) for k in sa["state_dict"])
    assert val_errors(ddp_run) == val_errors(run_folder(tmp_path, "b"))


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


def test_one_process_and_two_ddp_ranks_train_the_same_network(ddp_run, tmp_path, cache_dir):
    """Same seed, same global batch (32 = 2 x 16), dropout 0: the same images, crops and lighting reach the same
    step (order.py), so the weights agree to float tolerance and the validation errors exactly."""
    train_here(tmp_path, cache_dir, "one", ["model.dropout=0", "checkpoint_every_n_steps=null", "data.batch_size=32"])
    s1, s2 = (torch.load(f / "checkpoints" / "last.ckpt", weights_only=True)
              for f in (run_folder(tmp_path, "one"), ddp_run))
    assert s1["global_step"] == s2["global_step"] == 6
    worst = max((s1["state_dict"][k] - s2["state_dict"][k]).abs().max().item() for k in s1["state_dict"])
    assert worst < 1e-5
    assert val_errors(run_folder(tmp_path, "one")) == val_errors(ddp_run)


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


def test_a_sweep_through_submitit_and_our_handler_owns_the_timeout_signal_in_its_jobs(killer, tmp_path, cache_dir):
    """The submitit code path on this machine (hydra/launcher=submitit_local): each job in a process of its own,
    started by submitit, every job in the sweep's one folder though each resolved it on its own. submitit installs
    its own SIGUSR2 handler in the job process (resubmit, no training state saved); ours replaces it: each job
    checkpoints at the step boundary and requeues itself through scontrol."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'scontrol.log'}\n")
    (bin_dir / "scontrol").chmod(0o755)
    env = {**killer, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "77"}
    proc = run_cli(["-m", "hydra/launcher=submitit_local", *BASE, f"paths.log_dir={tmp_path / 'logs'}", "seed=0,1",
                    "+callbacks.kill._target_=killer.KillAt", "+callbacks.kill.step=10", "+callbacks.kill.sig=SIGUSR2"],
                   tmp_path, cache_dir, timeout=300, env=env)
    assert proc.returncode != 0  # the jobs ended to be requeued: not a success
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", "77"] * 2
    sweeps = list((tmp_path / "logs" / "multiruns").iterdir())
    assert len(sweeps) == 1, sweeps
    jobs = sorted(sweeps[0].glob("*_default"))
    assert [p.name for p in jobs] == ["0_default", "1_default"]
    for job in jobs:
        assert (job / "checkpoints" / "last.ckpt").is_file()  # epoch 0's
        assert torch.load(job / "checkpoints" / "interrupted.ckpt", weights_only=True)["global_step"] == 11
    assert list(sweeps[0].glob(".submitit/*/*_submitted.pkl"))


def test_ddp_divergence_stops_every_rank_with_the_error(tmp_path, cache_dir):
    proc = train(tmp_path, cache_dir, [*DDP, "run_id=n", "model.optimizer.lr=1e6"], timeout=240)
    assert proc.returncode == 1, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: train/loss is not finite")]
    assert len(errors) == 2, proc.stderr[-3000:]  # rank 0 and rank 1, each its own line, at the same step
    assert len({line.split(" (checked")[0] for line in errors}) == 1


