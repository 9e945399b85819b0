"""The error rates the paper reports, and the one place their names are spelt: the module logs them, the plateau
schedule, the best checkpoint and Hydra's sweepers follow ``MONITOR``, the loggers summarise and the reports read
``ERRORS``, alexnet-eval prints ``VIEWS``.

    train/top1_err  val/top1_err  test/top1_err  test/top1_err_10crop   (and top5_err where there are > 5 classes)

Top-k error is 1 - micro-averaged top-k accuracy (torchmetrics), over every image of the split exactly once
(``images`` counts them: under DDP each rank's shard, summed).
"""

from __future__ import annotations

import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

TOP1, TOP5 = "top1_err", "top5_err"
TEN_CROP = "_10crop"  # the 10-crop view's suffix (section 4.1)
VIEWS = {"centre crop": "", "10 crops": TEN_CROP}


def logged(stage: str, name: str = TOP1, view: str = "") -> str:
    """The logged name: ``logged("test", TOP5, TEN_CROP)`` is test/top5_err_10crop."""
    return f"{stage}/{name}{view}"


MONITOR = logged("val")  # section 5: "the validation error rate"
TEST_ERRORS = tuple(logged("test", name, view) for view in VIEWS.values() for name in (TOP1, TOP5))
ERRORS = (logged("val"), logged("val", TOP5), *TEST_ERRORS)


class TopKError(MulticlassAccuracy):
    """1 - micro-averaged top-k accuracy: the error rate the paper reports."""

    def compute(self) -> torch.Tensor:
        return 1.0 - super().compute()


class ImagesCounted(Metric):
    """How many images the error rates were computed on, summed over the ranks the metrics sync over: each
    evaluation image once under DDP (EvalShardSampler), and once, not twice, under the tower strategy."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("images", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self.images += target.numel()

    def compute(self) -> torch.Tensor:
        return self.images


def error_metrics(num_classes: int, count_images: bool = False) -> MetricCollection:
    metrics: dict[str, Metric] = {TOP1: TopKError(num_classes, top_k=1, average="micro")}
    if num_classes > 5:
        metrics[TOP5] = TopKError(num_classes, top_k=5, average="micro")
    if count_images:
        metrics["images"] = ImagesCounted()
    return MetricCollection(metrics)
