"""``train/data_wait``: the share of training time spent waiting for the next batch (a starving device shows).

Between the end of one training batch and the start of the next, the loop fetches the next batch from the
loader, moves it to the device and runs ``on_after_batch_transfer`` (the data module's float work). That time,
over the wall time since the last logged point, is logged every ``trainer.log_every_n_steps`` steps: near 0 the
model is the bottleneck, near 1 the data. Host clocks only, no device sync: on a GPU the host runs at most a few
kernels ahead, and the throughput monitor synchronizes on the same logging steps, so over a window the two
clocks agree. The wait before the first batch of an epoch (workers starting) is not counted.
"""

from __future__ import annotations

import time

from lightning import pytorch as pl

from alexnet_lit.callbacks.cadence import logging_step


class DataWait(pl.Callback):
    def __init__(self) -> None:
        self._batch_end: float | None = None
        self._window_start: float | None = None
        self._waited = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._batch_end = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        now = time.perf_counter()
        if self._batch_end is not None:
            self._waited += now - self._batch_end
        if self._window_start is None:
            self._window_start = now

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        now = time.perf_counter()
        self._batch_end = now
        if not logging_step(trainer) or self._window_start is None:
            return
        elapsed = now - self._window_start
        if elapsed > 0 and self._waited > 0:
            pl_module.log("train/data_wait", self._waited / elapsed, on_step=True, on_epoch=False)
        self._window_start, self._waited = now, 0.0
