"""The steps on which callbacks may read values from the device: Lightning's logging steps.

Reading a tensor on the host (``float(loss)``, ``.item()``, ``.tolist()``) waits for the device to finish the
step. Lightning reads the logged values on every ``trainer.log_every_n_steps``-th step to write them; our
callbacks read theirs on the same steps, so a step in between never waits (tests/test_syncs.py counts).
"""

from __future__ import annotations

import torch
from lightning import pytorch as pl


def logging_step(trainer: pl.Trainer) -> bool:
    """Whether this training step is one the loggers write (true from on_train_batch_start to its end)."""
    return trainer._logger_connector.should_update_logs


def wait_for_device(device: torch.device) -> None:
    """Block until the device has finished its queued work (a host sync; a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
