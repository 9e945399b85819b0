"""One LightningDataModule over every source (sources.py), with the paper's crop/flip (augment.py) and 10-crop
test view (ten_crop.py).

    python train.py data=generated      # embedded shapes, generated on first use
    python train.py data=cifar10 data.root=/path/to/cifar10-jpg
    python train.py data=imagenet data.root=/path/to/imagenet

Workers produce uint8 crops; ``on_after_batch_transfer`` turns the batch into normalized floats on the device
(the GPU when there is one). The test loaders are the centre crop and, with ``data.ten_crop=true``, the 10-crop view;
the module logs them under different names.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from lightning import pytorch as pl
from torch.utils.data import DataLoader

from alexnet_lit.data import sources
from alexnet_lit.data.augment import eval_transform, normalize, train_transform


def default_workers() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, 8))


def batch_size(batch: Any) -> int:
    """Images in a batch; used by the throughput monitor."""
    return batch[0].shape[0]


class AlexNetDataModule(pl.LightningDataModule):
    def __init__(
        self,
        source: str,
        num_classes: int,
        root: str | None = None,
        download: bool = False,
        resize_size: int = 256,
        crop_size: int = 224,
        flip: bool = True,
        ten_crop: bool = True,
        mean: tuple[float, ...] = (0.485, 0.456, 0.406),
        std: tuple[float, ...] = (0.229, 0.224, 0.225),
        batch_size: int = 128,
        num_workers: int | None = None,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
        prefetch_factor: int | None = 2,
        generated: dict | None = None,
        cache_dir: str = "~/.cache/alexnet-lit",
    ) -> None:
        super().__init__()
        self.source, self.root, self.download = source, root, download
        self.num_classes, self.resize_size, self.crop_size = num_classes, resize_size, crop_size
        self.flip, self.ten_crop = flip, ten_crop
        self.batch_size = batch_size
        self.num_workers = default_workers() if num_workers is None else num_workers
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.persistent_workers, self.prefetch_factor = persistent_workers, prefetch_factor
        self.generated, self.cache_dir = dict(generated or {}), cache_dir
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)
        self.datasets: dict[str, Any] = {}

    def prepare_data(self) -> None:
        sources.prepare(self.source, self.root, self.cache_dir, self.generated, self.download)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        transforms = {
            "train": train_transform(self.resize_size, self.crop_size, self.flip),
            "val": eval_transform(self.resize_size, self.crop_size),
            "test": eval_transform(self.resize_size, self.crop_size),
        }
        if self.ten_crop:
            transforms["test_10crop"] = eval_transform(self.resize_size, self.crop_size, ten_crop=True)
        self.datasets = sources.build(self.source, self.root, self.num_classes, transforms, self.cache_dir,
                                      self.generated, self.download)

    def _loader(self, split: str, shuffle: bool, batch_size: int | None = None) -> DataLoader:
        workers = self.num_workers
        return DataLoader(
            self.datasets[split],
            batch_size=batch_size or self.batch_size,
            shuffle=shuffle,
            drop_last=shuffle,
            num_workers=workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and workers > 0,
            prefetch_factor=self.prefetch_factor if workers > 0 else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> list[DataLoader]:
        loaders = [self._loader("test", shuffle=False)]
        if self.ten_crop:  # 10 crops per image: a tenth of the batch keeps memory per step the same
            loaders.append(self._loader("test_10crop", False, max(1, self.batch_size // 10)))
        return loaders

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        x, y = batch
        if x.dtype == torch.uint8:
            x = normalize(x, self.mean.to(x.device), self.std.to(x.device))
        return x, y
