"""Ctrl-C and SIGTERM: one behaviour in every entry point and every worker process.

The main process turns SIGINT and SIGTERM into a ``Signalled`` exception, raised in the main thread as Python
raises KeyboardInterrupt, so ``finally`` blocks and Lightning's ``on_exception`` hooks run; the entry point then
exits 128 + the signal's number (130, 143). Lightning turns a KeyboardInterrupt into exit 1, but re-raises any
other exception, so Ctrl-C keeps its conventional code. Worker processes (DataLoader, prepare's pool) ignore both:
a signal sent to the whole process group (a terminal's Ctrl-C, SLURM's SIGTERM) is the parent's to handle, which
saves and shuts them down, instead of each worker dying mid-batch with a traceback of its own.
"""

from __future__ import annotations

import os
import signal


class Signalled(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _raise_signalled(signum, frame) -> None:
    raise Signalled(signum)


def install_handlers() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _raise_signalled)


def ignore_in_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def dataloader_worker_init(worker_id: int, rank: int = 0) -> None:
    """DataLoader ``worker_init_fn``: ignore the group's signals, and seed as Lightning's own would have
    (``seed_everything(workers=True)`` adds its seeding only to loaders that have no worker_init_fn)."""
    ignore_in_worker()
    if os.environ.get("PL_SEED_WORKERS") == "1":
        from lightning.fabric.utilities.seed import pl_worker_init_function

        pl_worker_init_function(worker_id, rank)
