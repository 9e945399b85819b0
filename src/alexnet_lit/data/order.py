"""The training order: which image each step sees, and the random numbers of its augmentation, as pure functions of
(seed, epoch, position in the epoch), never of the number of workers, of prefetching, or of restarts.

    python train.py seed=3                       # another order and other crops; the same on every machine
    python train.py ckpt_path=last run_id=X      # a resumed epoch continues at the image it had reached

1. ``EpochOrder`` (the sampler): epoch e's permutation is ``randperm(n)`` from a generator seeded with
   ``derive_seed(seed, "order", e)``; the same generator gives every position p its ``sample_seed``. Under DDP rank
   r of w takes positions r, r + w, r + 2w, ... (DistributedSampler's layout, tail dropped), so batch k of the w
   ranks together is batch k of one process with w times the batch size, same images, same crops.
2. ``Seeded`` (a dataset wrapper, in the worker): seeds torch, numpy and random with the sample's seed, draws the
   3 standard normal numbers of its PCA lighting (section 4.1, applied on the device by lighting.py), then runs
   the transform (crop, flip). A train sample is ``(image, label, lighting_z)``. Cost: the three seeds and the
   draw take about a quarter of the time of the store crop itself (measured on a CPU core).
3. Resume: the data module saves ``{epoch, batches done}`` in the checkpoint; the resumed epoch's order starts
   ``batches x batch_size`` positions in. Nothing about workers is saved because nothing depends on them.

Why not torchdata's StatefulDataLoader: it records how far each worker's iterator got, which after prefetching is
ahead of what the training loop consumed, and it keeps per-worker RNG states, so the result still depends on the
number of workers; the order here is a function of the position, so the position is the whole state.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any tuple of ints and strings: independent streams for (seed, purpose, epoch, ...)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


class EpochOrder(Sampler):
    """Yields ``(index, sample_seed)`` for this rank's share of epoch ``epoch``'s permutation, from ``start``."""

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1, shuffle: bool = True) -> None:
        self.n, self.seed, self.rank, self.world, self.shuffle = n, seed, rank, world, shuffle
        self.epoch, self.start = 0, 0  # start: positions of this rank's share already consumed (resume)
        self.per_rank = n // world

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this before each epoch. A resume sets ``start`` for one epoch only."""
        if epoch != self.epoch:
            self.start = 0
        self.epoch = epoch

    def resume_at(self, epoch: int, position: int) -> None:
        self.epoch, self.start = epoch, position

    def epoch_plan(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(derive_seed(self.seed, "order", epoch))
        order = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
        seeds = torch.randint(0, 2**62, (self.n,), generator=g)
        return order, seeds

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order, seeds = self.epoch_plan(self.epoch)
        positions = range(self.rank, self.per_rank * self.world, self.world)[self.start :]
        for p in positions:
            yield int(order[p]), int(seeds[p])

    def __len__(self) -> int:  # the whole epoch even when resumed: Lightning counts the batches done itself
        return self.per_rank


class Seeded(Dataset):
    """``dataset[index]`` with the sample's own randomness (see the module docstring, step 2)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: tuple[int, int] | int) -> Any:
        # a plain index comes from a sampler Lightning substituted (trainer.overfit_batches): seeded by the index
        index, seed = item if isinstance(item, tuple) else (int(item), derive_seed("sample", int(item)))
        torch.default_generator.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        lighting_z = torch.randn(3)
        sample = self.dataset[index]
        if sample is None:  # data.skip_bad: left out of the batch by skip_bad_collate
            return None
        image, label = sample
        return image, label, lighting_z

    def __getattr__(self, name: str) -> Any:  # targets, classes, ... of the wrapped dataset
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)
