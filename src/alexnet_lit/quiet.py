"""What a run prints: what a user needs and can act on, nothing else (entry points call ``quiet()`` first).

Dropped, each measured on ``make train``'s output:
- Lightning's advertising tips ("💡 Tip: ... litlogger / litmodels"), logged as INFO on every fit;
- Lightning's own ``isinstance(treespec, LeafSpec)`` deprecation (its code, not ours; torch 2.14);
- the model summary's "Precision bf16-mixed is not supported by the model summary" (it then counts fp32 sizes,
  which is what the summary's MB column means for a bf16-mixed run anyway: the weights stay fp32);
- "You're resuming from a checkpoint that ended before the epoch ended and your dataloader is not resumable":
  it is (the data module's state holds the position in the epoch; data/order.py), Lightning only looks for a
  ``state_dict`` on the DataLoader object;
- torch.compile's "No CUDA runtime is found, using CUDA_HOME=..." on a machine without CUDA (the fused LRN kernel
  compiles for the CPU; models/lrn.py);
- the CSV logger's "Previous log files in this directory will be deleted" on a resume: they are not
  (``loggers.continue_csv`` keeps the rows up to the checkpoint).
W&B's own banner and footer are silenced in ``loggers.py`` (its ``silent`` setting); the run folder and the sync
command are printed once, at the end.
"""

from __future__ import annotations

import logging
import warnings


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith("💡 Tip:")


_TIPS = _DropTips()


class _DropNoCuda(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith("No CUDA runtime is found")


_NO_CUDA = _DropNoCuda()


def quiet() -> None:
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_TIPS)  # once, however often called
    logging.getLogger("torch.utils.cpp_extension").addFilter(_NO_CUDA)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    warnings.filterwarnings("ignore", message=r"Precision bf16-mixed is not supported by the model summary")
    warnings.filterwarnings("ignore", message=r"You're resuming from a checkpoint that ended before the epoch ended")
    warnings.filterwarnings("ignore", message=r"Experiment logs directory .* exists and is not empty")
