"""Progress: Lightning's rich bar on a terminal; plain lines where there is none (a log file, nohup, CI, SLURM).

    python train.py ... > train.out          # every trainer.log_every_n_steps steps: one line in train.out
    python train.py ... callbacks.progress.every_n_steps=200
    python train.py ... callbacks.progress.style=tqdm     # Lightning's TQDM bar (rich, lines, auto: the default)

A rich live display writes nothing readable to a file until it ends, so a job's output showed nothing for
minutes. ``LineProgress`` prints one line per ``every_n_steps`` training steps (epoch, step, loss, images/s,
the epoch's ETA) and one per validation (its errors).

Host syncs: showing a logged value on the host copies it from the device, which waits for the step to finish.
Lightning turns values logged with prog_bar=True into Python numbers after every batch, so the loss is not
logged so; all three styles here read the loss from the step's output every ``every_n_steps`` steps (default:
the loggers' steps, trainer.log_every_n_steps, where the loggers read it anyway); tests/test_syncs.py counts.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta

from lightning import pytorch as pl
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar, TQDMProgressBar

from alexnet_lit.callbacks.cadence import logging_step
from alexnet_lit.config import ConfigError
from alexnet_lit.parallel import replica


def progress_bar(every_n_steps: int | None = None, force_lines: bool = False, style: str = "auto") -> ProgressBar:
    """``style``: ``auto`` (the rich bar when stdout is a terminal, else ``LineProgress``; ``force_lines`` makes
    it always lines), ``rich``, ``tqdm`` or ``lines``."""
    check_style(style)
    if style == "auto":
        style = "rich" if sys.stdout.isatty() and not force_lines else "lines"
    return {"rich": RichBar, "tqdm": TQDMBar, "lines": LineProgress}[style](every_n_steps)


STYLES = ("auto", "rich", "tqdm", "lines")


def check_style(style: str) -> None:
    """The entry points call this before any work (checks.check); the factory above again, for direct use."""
    if style not in STYLES:
        raise ConfigError(f"callbacks.progress.style={style}: must be one of {', '.join(STYLES)}")


def due(bar, trainer: pl.Trainer, batch_idx: int) -> bool:
    """Whether a bar shows the logged values after this training batch: on the loggers' steps (or every
    ``every_n_steps`` batches, when given) and at the epoch's end."""
    if batch_idx + 1 == bar.total_train_batches:
        return True
    return (batch_idx + 1) % bar.every_n_steps == 0 if bar.every_n_steps else logging_step(trainer)


class ShowsLoss:
    """Adds the training loss to a Lightning bar's values, read from the step's output when ``due`` (the loss is
    not logged with prog_bar=True: Lightning would read it after every batch)."""

    every_n_steps: int | None
    _loss: float | None = None

    def note_loss(self, trainer, outputs, batch_idx: int) -> bool:
        show = due(self, trainer, batch_idx)
        if show:
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
            self._loss = float(loss) if loss is not None else None  # the one read of this step
        return show

    def get_metrics(self, trainer, pl_module) -> dict:
        shown = super().get_metrics(trainer, pl_module)
        return {"loss": f"{self._loss:.4f}", **shown} if self._loss is not None else shown


class RichBar(ShowsLoss, RichProgressBar):
    """Lightning's rich bar, advancing every batch; the loss it shows is read when ``due``. (It reads the other
    progress-bar values every batch, but those are Python numbers already: nothing is logged with prog_bar=True
    per step.)"""

    def __init__(self, every_n_steps: int | None = None) -> None:
        super().__init__()
        self.every_n_steps = every_n_steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.note_loss(trainer, outputs, batch_idx)
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


class TQDMBar(ShowsLoss, TQDMProgressBar):
    """Lightning's TQDM bar refreshed every N batches (a log file gets one update per N steps, not one per step)."""

    def __init__(self, every_n_steps: int | None = None) -> None:
        super().__init__()
        self.every_n_steps = every_n_steps

    def setup(self, trainer, pl_module, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._refresh_rate = self.every_n_steps or trainer.log_every_n_steps or 50

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.note_loss(trainer, outputs, batch_idx)
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


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
        done, total = batch_idx + 1, self.total_train_batches
        if not due(self, trainer, batch_idx):
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
