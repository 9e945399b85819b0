"""Stop safely: on a signal, checkpoint at a step boundary and exit 130 / 143 (requeue on SLURM's warning signal);
on a non-finite loss, stop every rank with an error; never write a checkpoint of non-finite weights.

    kill -TERM <pid>                        # -> checkpoints/interrupted.ckpt at the next step, exit 143
    sbatch --signal=SIGUSR1@90 --requeue    # -> the same, then `scontrol requeue`; the requeued job resumes
    python train.py model.optimizer.lr=1e6  # -> "error: train/loss is not finite at step 2 ...", exit 1

Steps, at the end of every training batch:
1. The loss's finiteness is folded into a flag that stays on the device (no host sync per step).
2. Every ``check_every_n_steps`` steps (default: trainer.log_every_n_steps, where Lightning syncs to log anyway)
   the flag is read; under DDP it and any pending signal are max-reduced in one collective, so every rank takes
   the same decision at the same step (a rank that stopped alone would leave the others waiting in the next
   all-reduce). On one process a pending signal is acted on at the very next step.
3. A signal: save ``interrupted.ckpt`` (every rank takes part, rank 0 writes), requeue if it was SLURM's
   warning, raise ``Signalled`` (the entry point exits 128 + the signal's number). A signal during validation
   waits for the end of the next training step: Lightning 2.6 resumes a checkpoint taken mid-validation
   without rerunning that validation (measured: the epoch's val row and plateau step were lost), so the run
   finishes the validation, writes its epoch's checkpoints, and stops one step later.
4. Non-finite: raise ``Diverged`` naming the step and the last good checkpoint; the entry point exits 1.
Before any checkpoint is written (``on_save_checkpoint``) the weights and the flag are checked, so a divergence
between two checks still never reaches a file: the best and last good checkpoints stay as they were.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import torch
from lightning import pytorch as pl

from alexnet_lit import signals
from alexnet_lit.checkpoint import newest
from alexnet_lit.models.towers import local

NEVER = 2**62


class Diverged(signals.RunFailed):
    """The run's numbers are no longer finite: a failure of the run (exit 1), not of the user's input."""


def slurm_job() -> str | None:
    """The job to requeue: an array task as ARRAYJOB_TASK, else the job id; None outside SLURM."""
    if os.environ.get("SLURM_ARRAY_JOB_ID") and os.environ.get("SLURM_ARRAY_TASK_ID"):
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


def requeue() -> None:
    job = slurm_job()
    if job is None:
        print("not a SLURM job: nothing to requeue", file=sys.stderr)
        return
    result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    outcome = "requeued" if result.returncode == 0 else f"requeue failed ({result.stderr.strip()[:200]})"
    print(f"SLURM job {job}: {outcome}", file=sys.stderr)


class StopSafely(pl.Callback):
    def __init__(self, dirpath: str, check_every_n_steps: int | None = None) -> None:
        self.dirpath, self.every = dirpath, check_every_n_steps
        self.bad: torch.Tensor | None = None
        self.first_bad: torch.Tensor | None = None

    # --- when signals wait for a step boundary ------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.bad = torch.zeros((), dtype=torch.bool, device=pl_module.device)
        self.first_bad = torch.full((), NEVER, dtype=torch.int64, device=pl_module.device)
        signals.defer(True)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        signum = self._agreed_signal(trainer, pl_module)
        signals.defer(False)
        if signum:  # arrived during the last validation: its epoch's checkpoints are written already
            raise signals.Signalled(signum)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        signals.defer(False)

    # --- the checks ----------------------------------------------------------------------------------------
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None and self.bad is not None:
            nonfinite = ~torch.isfinite(loss.detach()).all()
            self.first_bad = torch.where(nonfinite & ~self.bad, trainer.global_step, self.first_bad)
            self.bad |= nonfinite
        every = self.every or trainer.log_every_n_steps or 1
        due = trainer.global_step % every == 0
        if trainer.world_size > 1:
            if not due:
                return
            reduced = self._reduce(trainer, pl_module)
            signum, bad, first = reduced
        else:
            signum = signals.pending_signal() or 0
            bad, first = (bool(self.bad), int(self.first_bad)) if due and self.bad is not None else (False, NEVER)
        if bad:
            self._diverged(trainer, first)
        if signum:
            self._stop(trainer, signum)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        """Refuse non-finite weights; write out what the loggers hold (the CSV then has every row up to the
        checkpoint when the checkpoint exists: a resume drops the rows after it, and none are missing)."""
        # a sum is non-finite when an element is (one reduction a tensor; isfinite() writes a bool per element:
        # measured 0.1-1.4 s for the paper's net, on the training thread)
        finite = torch.isfinite(torch.stack([local(p).detach().float().sum() for p in pl_module.parameters()])).all()
        bad = ~finite if self.bad is None else (~finite | self.bad)
        if trainer.world_size > 1:
            bad = trainer.strategy.reduce(bad.to(torch.int64), reduce_op="max")
        if bool(bad):
            first = int(self.first_bad) if self.first_bad is not None else NEVER
            self._diverged(trainer, first, saving=True)
        if trainer.is_global_zero:
            for lg in trainer.loggers:
                lg.save()

    # --- outcomes ------------------------------------------------------------------------------------------
    def _reduce(self, trainer, pl_module) -> tuple[int, bool, int]:
        device = pl_module.device
        state = torch.stack([torch.tensor(signals.pending_signal() or 0, device=device),
                             self.bad.to(torch.int64), -self.first_bad])
        signum, bad, neg_first = (int(v) for v in trainer.strategy.reduce(state, reduce_op="max").tolist())
        return signum, bool(bad), -neg_first

    def _agreed_signal(self, trainer, pl_module) -> int:
        if trainer.world_size > 1 and self.bad is not None:
            return self._reduce(trainer, pl_module)[0]
        return signals.pending_signal() or 0

    def _diverged(self, trainer: pl.Trainer, first: int, saving: bool = False) -> None:
        where = f"at step {first}" if first < NEVER else "in the weights"
        good = newest(self.dirpath)
        resume = (f"the last good checkpoint is {good}: resume it with ckpt_path=last and a lower "
                  f"model.optimizer.lr (applied on resume)" if good else "no checkpoint was written before it")
        action = "refusing to write a checkpoint of it" if saving else "stopped"
        raise Diverged(f"train/loss is not finite {where} (checked at step {trainer.global_step}): {action}; "
                       f"{resume}")

    def _stop(self, trainer: pl.Trainer, signum: int) -> None:
        path = os.path.join(self.dirpath, "interrupted.ckpt")
        signals.defer(False)  # a further signal during the save stops at once
        trainer.save_checkpoint(path, weights_only=False)  # the whole training state, to resume from
        if trainer.is_global_zero:
            print(f"{signal.Signals(signum).name}: saved {path} at step {trainer.global_step}; resume with "
                  f"ckpt_path=last run_id={os.path.basename(os.path.dirname(self.dirpath))}", file=sys.stderr)
            if signum in signals.REQUEUE:
                requeue()
        raise signals.Signalled(signum)
