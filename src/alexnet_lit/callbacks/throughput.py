"""Lightning's ThroughputMonitor (train/samples_per_sec, train/flops_per_sec), without a host sync per step and
counting replicas, not processes.

1. Syncs: Lightning's monitor calls ``torch.cuda.synchronize()`` after every batch so that its clock is right.
   Here the clock is read (and the device synchronized) only on the steps where the loggers write anyway
   (trainer.log_every_n_steps); the images of the steps in between are counted without touching the device, so
   each rate is exact over the window of logged points (window_size points = window_size x N steps).
   Validation and test read it once, at their last batch (Lightning's monitor: every batch).
2. Replicas: under the tower strategy (parallel.py) the two ranks of a pair process the same images, so the
   global images/s is a device's images/s times the number of replicas, not times the number of processes;
   FLOPs are counted per pair (the module's ``flops_per_batch`` is the whole network's).
"""

from __future__ import annotations

import time

import torch
from lightning.pytorch.callbacks import ThroughputMonitor

from alexnet_lit.callbacks import cadence
from alexnet_lit.callbacks.cadence import logging_step
from alexnet_lit.parallel import replica


class ReplicaThroughput(ThroughputMonitor):
    def setup(self, trainer, pl_module, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        for throughput in self._throughputs.values():
            throughput.world_size = replica(trainer)[1]
        self._pending: dict = {}  # per stage: batches since its last point

    @torch.inference_mode()
    def _update(self, trainer, pl_module, batch, iter_num: int) -> None:
        stage = trainer.state.stage
        self._samples[stage] += self.batch_size_fn(batch)
        self._batches[stage] += 1
        self._pending[stage] = self._pending.get(stage, 0) + 1
        if not (logging_step(trainer) if stage.value == "train" else iter_num >= evaluation_batches(trainer, stage)):
            return  # no clock, no sync: a point every log_every_n_steps steps, or at the evaluation's end
        cadence.wait_for_device(trainer.strategy.root_device)  # the clock must see the finished steps
        flops = getattr(pl_module, "flops_per_batch", None)
        self._throughputs[stage].update(time=time.perf_counter() - self._t0s[stage], batches=self._batches[stage],
                                        samples=self._samples[stage],
                                        flops=None if flops is None else flops * self._pending[stage])
        self._pending[stage] = 0

    def _compute(self, trainer, iter_num: int | None = None) -> None:
        if self._throughputs[trainer.state.stage]._time:  # an evaluation has its one point at its end only
            super()._compute(trainer, iter_num)


def evaluation_batches(trainer, stage) -> float:
    """The batches of this validation, test or prediction over all its loaders (inf when unknown)."""
    counts = {"validate": trainer.num_val_batches, "test": trainer.num_test_batches,
              "predict": trainer.num_predict_batches}.get(stage.value, [float("inf")])
    return sum(counts) if counts else float("inf")
