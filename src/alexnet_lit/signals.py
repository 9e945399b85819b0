"""Ctrl-C, SIGTERM and the cluster's requeue signals: one behaviour in every entry point and every worker process.

The main process turns SIGINT and SIGTERM into a ``Signalled`` exception, raised in the main thread as Python
raises KeyboardInterrupt, so ``finally`` blocks and Lightning's ``on_exception`` hooks run; the entry point then
exits 128 + the signal's number (130, 143). Lightning turns a KeyboardInterrupt into exit 1, but re-raises any
other exception, so Ctrl-C keeps its conventional code. Worker processes (DataLoader, prepare's pool) ignore both:
a signal sent to the whole process group (a terminal's Ctrl-C, SLURM's SIGTERM) is the parent's to handle, which
saves and shuts them down, instead of each worker dying mid-batch with a traceback of its own.

While training, the handler only records the signal (``defer``): callbacks/stop.py ends the run at the next step
boundary, after writing a checkpoint there, so that resuming from it is exact (a checkpoint taken at an arbitrary
point of a step would hold an optimizer that has stepped and a loop that has not counted it). A second signal
while one is pending stops at once. SIGUSR1 (``sbatch --signal=SIGUSR1@90``) and SIGUSR2 (submitit's) mean "time
is nearly up": the same checkpoint, then the job is requeued.
"""

from __future__ import annotations

import os
import signal


class RunFailed(RuntimeError):
    """The run itself failed (diverged, a checkpoint could not be written): ``error:`` and exit 1, not 2 (2 is
    for the user's input) and never 0."""


class Signalled(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
REQUEUE = (signal.SIGUSR1, signal.SIGUSR2)
_deferring = False
pending: int | None = None  # a signal received while deferring, not acted on yet


def _handle(signum, frame) -> None:
    global pending
    if _deferring and pending is None:
        pending = signum
        os.write(2, f"received {signal.Signals(signum).name}: stopping at the end of this step, after a checkpoint "
                    f"(send it again to stop at once)\n".encode())  # os.write: a print here could re-enter a print
        return
    raise Signalled(signum)


def install_handlers() -> None:
    """Ours, replacing any earlier ones (submitit's in a cluster job): one owner of every signal."""
    for signum in HANDLED:
        signal.signal(signum, _handle)


def defer(on: bool) -> None:
    """While on, a signal waits for ``pending_signal()``'s caller instead of interrupting the code it lands in."""
    global _deferring, pending
    _deferring = on
    if on:
        pending = None


def pending_signal() -> int | None:
    return pending


def ignore_in_worker() -> None:
    for signum in HANDLED:
        signal.signal(signum, signal.SIG_IGN)


def dataloader_worker_init(worker_id: int, rank: int = 0) -> None:
    """DataLoader ``worker_init_fn``: ignore the group's signals, and seed as Lightning's own would have
    (``seed_everything(workers=True)`` adds its seeding only to loaders that have no worker_init_fn)."""
    ignore_in_worker()
    if os.environ.get("PL_SEED_WORKERS") == "1":
        from lightning.fabric.utilities.seed import pl_worker_init_function

        pl_worker_init_function(worker_id, rank)
