"""Progress: Lightning's rich bar on a terminal; plain lines where there is none (a log file, nohup, CI, SLURM).

    python train.py ... > train.out          # every trainer.log_every_n_steps steps: one line in train.out
    python train.py ... callbacks.progress.every_n_steps=200

A rich live display writes nothing readable to a file until it ends, so a job's output showed nothing for
minutes. ``LineProgress`` prints one line per ``every_n_steps`` training steps (epoch, step, loss, images/s,
the epoch's ETA) and one per validation (its errors). Reading the loss is one host sync per line, not per step.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta

from lightning import pytorch as pl
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar

from alexnet_lit.parallel import replica


def progress_bar(every_n_steps: int | None = None, force_lines: bool = False) -> ProgressBar:
    """The rich bar when stdout is a terminal, else ``LineProgress`` (or always, with ``force_lines``)."""
    if sys.stdout.isatty() and not force_lines:
        return RichProgressBar()
    return LineProgress(every_n_steps)


class LineProgress(ProgressBar):
    def __init__(self, every_n_steps: int | None = None) -> None:
        super().__init__()
        self.every_n_steps, self._enabled = every_n_steps, True
        self._start, self._images = 0.0, 0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _print(self, text: str) -> None:
        if self._enabled and self.trainer.is_global_zero:
            print(text, flush=True)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start, self._images = time.monotonic(), 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._images += len(batch[1]) if isinstance(batch, (list, tuple)) else 0
        every = self.every_n_steps or trainer.log_every_n_steps or 50
        done = batch_idx + 1
        total = self.total_train_batches
        if done % every and done != total:
            return
        elapsed = max(time.monotonic() - self._start, 1e-9)
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        loss_text = f" loss {float(loss):.4f}" if loss is not None else ""  # the one sync of this line
        eta = ""
        if isinstance(total, int) and total > 0:
            eta = f" epoch ETA {timedelta(seconds=round(elapsed / done * (total - done)))}"
        of = f"/{total}" if isinstance(total, int) else ""
        max_epochs = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        self._print(f"epoch {trainer.current_epoch + 1}{max_epochs} step {done}{of}{loss_text} "
                    f"{self._images * replica(trainer)[1] / elapsed:,.0f} img/s{eta}")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        shown = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/") and "err" in k}
        if shown:
            metrics = " ".join(f"{k} {v:.4f}" for k, v in sorted(shown.items()))
            self._print(f"epoch {trainer.current_epoch + 1} {metrics}")
