"""No host syncs inside a training step: a device-to-host read (``.item()``, ``float(t)``, ``.tolist()``, ...)
waits for the device, and so does every op whose output size depends on the data (``torch.unique``, ``nonzero``,
a boolean mask, ``masked_select``, ``bincount``): the host must learn the size before it can allocate. On a GPU
one per step costs a measurable share of AlexNet's step. The CPU stands in for the device: every such read and op
is counted, per step, with the default callbacks, logger and progress bar (the ops at the dispatcher, so a call
from C++ or a library counts too). On CUDA, ``make check-gpu`` checks the same with
``torch.cuda.set_sync_debug_mode``."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from lightning import pytorch as pl
from torch.utils._python_dispatch import TorchDispatchMode

from alexnet_lit.callbacks import cadence
from alexnet_lit.callbacks.cadence import logging_step
from alexnet_lit.cli.train import run
from conftest import TINY, compose_train

READS = ["item", "tolist", "numpy", "cpu", "__float__", "__int__", "__bool__", "__index__"]
# aten ops whose output size (or the Python value they return) depends on the data: the host waits for the device.
# Not aten's _local_scalar_dense (a C++ .item()): CPU kernels call it to validate their input (one_hot checks its
# classes on the CPU, not on CUDA: pytorch#57902), which no device would wait for; Python's reads are READS.
SYNCING = {"nonzero", "unique", "_unique", "_unique2", "unique_dim", "unique_consecutive", "masked_select",
           "bincount", "histc", "repeat_interleave", "equal", "is_nonzero", "argwhere"}


class DataDependentOps(TorchDispatchMode):
    """Counts the syncing ops at the dispatcher (a boolean mask reaches it as ``index`` with a bool tensor), into
    the same counter as the Python-level reads."""

    def __init__(self, count: Counter) -> None:
        super().__init__()
        self.count = count

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in SYNCING or (name == "index" and any(isinstance(i, torch.Tensor) and i.dtype == torch.bool
                                                        for i in (args[1] if len(args) > 1 else ()))):
            self.count[f"aten.{name}"] += 1
        return func(*args, **(kwargs or {}))


class CountReads(pl.Callback):
    """Reads of tensors on the host per training step (from its start to the next step's start), and whether the
    step was a logging step or an epoch's last."""

    def __init__(self, monkeypatch) -> None:
        self.count, self.steps, self._at, self._step = Counter(), [], 0, None
        for name in READS:
            original = getattr(torch.Tensor, name)

            def counted(t, *args, _original=original, _name=name, **kwargs):
                self.count[_name] += 1
                return _original(t, *args, **kwargs)

            monkeypatch.setattr(torch.Tensor, name, counted)
        monkeypatch.setattr(cadence, "wait_for_device", lambda device: self.count.update(["wait_for_device"]))
        # the loader's own work on host tensors (collate, workers' shared memory) is not a device read
        from torch.utils.data.dataloader import _BaseDataLoaderIter

        fetch = _BaseDataLoaderIter.__next__

        def fetching(it):
            before = sum(self.count.values())
            try:
                return fetch(it)
            finally:
                self.count["(loader, not counted)"] -= sum(self.count.values()) - before

        monkeypatch.setattr(_BaseDataLoaderIter, "__next__", fetching)
        self.ops = DataDependentOps(self.count)

    def on_train_start(self, trainer, pl_module) -> None:
        self.ops.__enter__()  # the training loop's thread, from the first step to the end of fit

    def on_train_end(self, trainer, pl_module) -> None:
        self.ops.__exit__(None, None, None)

    def _close(self) -> None:
        if self._step is not None:
            self.steps.append((*self._step, sum(self.count.values()) - self._at))
            self._step = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._close()
        self._at = sum(self.count.values())
        self._step = (batch_idx, logging_step(trainer) or batch_idx + 1 == trainer.num_training_batches)

    def on_validation_start(self, trainer, pl_module) -> None:
        self._close()  # validation reads its results once; it is not a training step

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._close()


@pytest.mark.parametrize("style", ["lines", "rich", "tqdm"])
def test_no_host_sync_between_logging_steps(style, tmp_path, cache_dir, monkeypatch):
    from alexnet_lit.cli import train as train_cli

    counter, original = CountReads(monkeypatch), train_cli.extra_callbacks
    monkeypatch.setattr(train_cli, "extra_callbacks", lambda *a: [*original(*a), counter])
    bar = f"callbacks.progress={{_target_:alexnet_lit.callbacks.progress.progress_bar,style:{style}}}"
    args = [*TINY, "data.generated.train_per_class=40", "trainer.log_every_n_steps=5", "data.num_workers=2", bar,
            "trainer.enable_progress_bar=true", "callbacks.chance.after_steps=12", "callbacks.chance.window=4",
            "test=false", "checkpoint_every_n_steps=null"]
    run(compose_train(args, tmp_path, cache_dir))
    steps = counter.steps
    assert len(steps) == 400 // 16, steps
    quiet = [(i, n) for i, logged, n in steps if not logged]
    assert quiet and all(n == 0 for _, n in quiet), f"host reads on steps that are not logging steps: {quiet}"
    assert sum(n for _, logged, n in steps if logged) > 0  # the counter sees the reads of the logging steps


class CountWaits(pl.Callback):
    """Device waits (``cadence.wait_for_device``: the throughput clock's) per validation and per test."""

    def __init__(self, monkeypatch) -> None:
        self.waits, self.runs = 0, []
        monkeypatch.setattr(cadence, "wait_for_device", lambda device: setattr(self, "waits", self.waits + 1))

    def start(self, *args) -> None:
        self.waits = 0

    def end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.runs.append(self.waits)

    on_validation_start = on_test_start = start
    on_validation_end = on_test_end = end


def test_the_throughput_clock_waits_once_per_validation_and_test(tmp_path, cache_dir, monkeypatch):
    """The throughput callback reads the clock (a device sync on CUDA) at the last batch of an evaluation, not at
    every batch (Lightning's monitor does)."""
    from alexnet_lit.cli import train as train_cli

    counter, original = CountWaits(monkeypatch), train_cli.extra_callbacks
    monkeypatch.setattr(train_cli, "extra_callbacks", lambda *a: [*original(*a), counter])
    run(compose_train([*TINY, "data.generated.val_per_class=8", "trainer.max_epochs=2",
                       "checkpoint_every_n_steps=null"], tmp_path, cache_dir))
    assert counter.runs == [1, 1, 1], counter.runs  # 2 validations (5 batches each), the test (both its views)
