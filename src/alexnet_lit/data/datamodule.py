"""One LightningDataModule over every source (sources.py), with the paper's crop/flip (augment.py), 10-crop
test view (ten_crop.py), PCA lighting and mean subtraction (lighting.py).

    python train.py data=imagenet_prepared data.root=/data/imagenet-256   # the store from alexnet-prepare
    python train.py data=imagenet data.root=/data/imagenet                # raw folders, decoded on the fly
    python train.py data=cifar10 data.root=/path/to/cifar10-jpg
    python train.py data=generated                                        # embedded shapes

Workers produce uint8 crops; ``on_after_batch_transfer`` turns the batch into normalized floats on the device
(the GPU when there is one). The test loaders are the centre crop and, with ``data.ten_crop=true``, the 10-crop
view; the module logs them under different names. Under DDP the module shards itself: a distinct part of the
training set per rank and epoch, and every evaluation image exactly once (EvalShardSampler).

The training order and every random number of a sample's augmentation are functions of (seed, epoch, position)
(order.py): the number of workers does not change them, and a checkpoint records how far the epoch got
(``state_dict``), so a resumed run sees exactly the images and crops the uninterrupted one would have.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from lightning import pytorch as pl
from torch.utils.data import DataLoader, Sampler, SequentialSampler

from alexnet_lit.config import AugmentOn, ConfigError, DataConfig, Normalize, Source, build, check_data, plain
from alexnet_lit.data import jpeg, sources, ten_crop
from alexnet_lit.data.augment import crop_batch, eval_transform, train_transform
from alexnet_lit.data.classes import wnids
from alexnet_lit.data.contract import KEY, InputContract
from alexnet_lit.data.lighting import Normalizer
from alexnet_lit.data.order import EpochOrder, Seeded
from alexnet_lit.data.side_stream import SideStreamCopy
from alexnet_lit.data.sources import MissingData
from alexnet_lit.data.store import PreparedSplit, load_stats
from alexnet_lit.machine import default_workers
from alexnet_lit.parallel import replica
from alexnet_lit.signals import dataloader_worker_init


def batch_size(batch: Any) -> int:
    """Images in a batch; used by the throughput monitor."""
    return batch[0].shape[0]


class EvalShardSampler(Sampler[int]):
    """Rank r of w evaluates images r, r+w, r+2w, ...: every image exactly once over all ranks, no padding
    (DistributedSampler pads with duplicates, which would reach the metrics)."""

    def __init__(self, n: int, rank: int, world: int) -> None:
        self.indices = list(range(rank, n, world))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class AlexNetDataModule(pl.LightningDataModule):
    def __init__(self, cfg: DataConfig | None = None, stats: dict | None = None, seed: int = 0,
                 **kwargs: Any) -> None:
        """``cfg``, or DataConfig's keys as keyword arguments (checked against the schema, which holds every
        default). ``stats`` (mean image, eigenvectors) replaces reading ``stats_path``: a checkpoint's input
        contract brings its own (``alexnet-eval``). ``seed``: the run's seed, for the training order (order.py)."""
        super().__init__()
        self.seed = seed
        self.resume_from: tuple[int, int] | None = None  # (epoch, batches done) from a checkpoint
        cfg = build(DataConfig, kwargs, "data") if cfg is None else cfg
        check_data(cfg, stats_given=stats is not None)
        self.cfg = cfg
        self.source, self.root, self.download, self.custom_classes = cfg.source, cfg.root, cfg.download, \
            cfg.custom_classes
        self.num_classes, self.resize_size, self.crop_size = cfg.num_classes, cfg.resize_size, cfg.crop_size
        self.flip, self.ten_crop, self.augment_on = cfg.flip, cfg.ten_crop, AugmentOn(cfg.augment_on)
        self.batch_size = cfg.batch_size
        self.num_workers = default_workers() if cfg.num_workers is None else cfg.num_workers
        self.pin_memory = torch.cuda.is_available() if cfg.pin_memory is None else cfg.pin_memory
        self.copier = SideStreamCopy()
        self.persistent_workers, self.prefetch_factor = cfg.persistent_workers, cfg.prefetch_factor
        self.timeout = cfg.timeout
        self.generated, self.cache_dir, self.skip_bad = plain(cfg.generated), cfg.cache_dir, cfg.skip_bad
        if stats is None and cfg.stats_path:
            stats = load_stats(cfg.stats_path)
        self.normalizer = Normalizer(cfg.normalize, cfg.pixel_max, cfg.mean, cfg.std, cfg.lighting, stats)
        self.datasets: dict[str, Any] = {}

    def contract(self) -> InputContract:
        """What a network trained on these batches expects (data/contract.py); every checkpoint keeps it."""
        n = self.normalizer
        mean_image = n.mean_image_255.clone() if n.normalize == Normalize.mean_image else None
        return InputContract(self.crop_size, self.resize_size, n.pixel_max, n.normalize.value, n.mean_values,
                             n.std_values, mean_image, self.class_names())

    def class_names(self) -> list[str] | None:
        """The class of each label index: the canonical ILSVRC wnids, or a custom set's sorted class folders (as
        its labels were given); None before the data is set up or when a split does not say."""
        if not self.datasets:
            return None
        if not self.custom_classes and self.source in (Source.folder, Source.archives, Source.prepared):
            return list(wnids()) if self.num_classes == len(wnids()) else None
        ds = next(iter(self.datasets.values()))
        if hasattr(ds, "class_to_idx"):  # ImageFolder (generated, cifar10, custom folders)
            return [name for name, _ in sorted(ds.class_to_idx.items(), key=lambda kv: kv[1])]
        if isinstance(ds, PreparedSplit):  # a custom store: labels are the sorted class folders of train
            return sorted(ds.class_counts())
        return None

    def prepare_data(self) -> None:
        sources.prepare(self.source, self.root, self.cache_dir, self.generated, self.download)

    def setup(self, stage: str | None = None) -> None:
        """The splits the stage needs (testing a checkpoint needs no training set)."""
        prepared = self.source == Source.prepared
        transforms = {
            "train": train_transform(self.resize_size, self.crop_size, self.flip, prepared,
                                     self.augment_on == AugmentOn.device),
            "val": eval_transform(self.resize_size, self.crop_size, prepared=prepared),
            "test": eval_transform(self.resize_size, self.crop_size, prepared=prepared),
        }
        if self.ten_crop:
            transforms[ten_crop.SPLIT] = eval_transform(self.resize_size, self.crop_size, True, prepared)
        if stage in ("test", "validate", "predict"):
            transforms.pop("train")
        todo = {k: t for k, t in transforms.items() if k not in self.datasets}
        if todo:
            self.datasets.update(sources.build(self.source, self.root, self.num_classes, todo, self.cache_dir,
                                               self.generated, self.download, self.custom_classes, self.resize_size,
                                               self.skip_bad, self.augment_on == AugmentOn.device))

    def check_training_images(self, world_size: int = 1) -> None:
        """At least one full batch per device (batches drop the remainder): otherwise fit would run no step and
        test an untrained network. Lists the training set (setup), reads no image."""
        self.setup("fit")
        n = len(self.datasets["train"])
        if n // world_size < self.batch_size:
            where = f" per device ({world_size} devices)" if world_size > 1 else ""
            raise MissingData(f"data.batch_size={self.batch_size} is more than the {n // world_size} training images"
                              f"{where} in data.root={self.root}: no full batch, no training step; lower "
                              f"data.batch_size")

    def _world(self) -> tuple[int, int]:
        return replica(self.trainer)  # the rank and size of data parallelism: under trainer=towers, pairs

    def _loader(self, split: str, train: bool, batch_size: int | None = None) -> DataLoader:
        dataset, workers = self.datasets[split], self.num_workers
        rank, world = self._world()
        # the data module shards itself; the trainer's use_distributed_sampler is off (conf/trainer)
        if train:
            sampler: Sampler = EpochOrder(len(dataset), self.seed, rank, world)
            dataset = Seeded(dataset)
            if self.resume_from is not None:
                epoch, batches = self.resume_from
                sampler.resume_at(epoch, batches * (batch_size or self.batch_size))
                self.resume_from = None
        else:
            sampler = EvalShardSampler(len(dataset), rank, world) if world > 1 else SequentialSampler(dataset)
        return DataLoader(
            dataset,
            batch_size=batch_size or self.batch_size,
            sampler=sampler,
            drop_last=train,
            num_workers=workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and workers > 0,
            prefetch_factor=self.prefetch_factor if workers > 0 else None,
            timeout=self.timeout if workers > 0 else 0,  # a stuck worker fails the run instead of hanging it
            collate_fn=sources.skip_bad_collate if self.skip_bad else jpeg.collate if train else None,
            worker_init_fn=functools.partial(dataloader_worker_init, rank=rank),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> list[DataLoader]:
        loaders = [self._loader("test", train=False)]
        if self.ten_crop:  # at ten_crop.LOADER
            loaders.append(self._loader(ten_crop.SPLIT, False, ten_crop.batch_size(self.batch_size)))
        return loaders

    def state_dict(self) -> dict[str, Any]:
        """In every checkpoint: the input contract, and where the training order is (the epoch and the batches
        of it done)."""
        trainer, state = self.trainer, {"seed": self.seed, KEY: self.contract().as_dict()}
        if trainer is None or trainer.state.fn != "fit":
            return state
        epoch, done = trainer.current_epoch, trainer.fit_loop.epoch_loop.batch_progress.current.processed
        if done >= trainer.num_training_batches:  # saved at the epoch's end: a resume starts the next one (Lightning
            epoch, done = epoch + 1, 0            # makes that epoch's iterator before it calls set_epoch)
        return {**state, "epoch": epoch, "batches": done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """A resume continues the order where it was, on inputs prepared as the checkpoint's were."""
        if KEY in state and self.trainer is not None and self.trainer.state.fn == "fit":
            if differences := InputContract.from_dict(state[KEY]).differences(self.contract()):
                raise ConfigError(f"the checkpoint was trained on inputs prepared differently: {differences}; "
                                  f"resume with the data settings it was trained with")
        if "epoch" in state:
            self.resume_from = (int(state["epoch"]), int(state["batches"]))

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """On CUDA, on a side stream that overlaps the previous step's compute (data/side_stream.py)."""
        move = super().transfer_batch_to_device
        return self.copier(batch, device, lambda b, d: move(b, d, dataloader_idx))

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """uint8 -> float on the batch's device: PCA lighting (training only, with each sample's own draws), then
        mean subtraction."""
        if not isinstance(batch, (list, tuple)):  # the model summary's example input: already the network's input
            return batch
        x, y, *rest = batch
        lighting_z = rest[0] if rest else None
        if isinstance(x, (list, tuple)):  # data.augment_on=device: whole rows and each sample's crop draws
            rows, draws = x
            if isinstance(rows, jpeg.EncodedBatch):  # a JPEG store's bytes: one batched decode (nvJPEG on CUDA)
                rows, keep = rows.decode(y.device, self.skip_bad)
                if len(keep) < len(y):
                    draws, y = draws[keep], y[keep]
                    lighting_z = lighting_z[keep] if lighting_z is not None else None
            x = crop_batch(rows, draws, self.crop_size)
        if self.source == Source.prepared:  # the store's crops are HWC: NHWC -> NCHW view in channels_last memory
            if self.ten_crop and dataloader_idx == ten_crop.LOADER and self.trainer is not None and \
                    self.trainer.testing:
                x = ten_crop.ten_crops(x, self.crop_size)  # the loader shipped whole rows: cut here, on the device
            x = x.movedim(-1, -3)
        if x.dtype == torch.uint8:
            self.normalizer.to(x.device)
            training = self.trainer is not None and self.trainer.training
            x = self.normalizer(x, train=training, lighting_z=lighting_z)
        return x, y
