"""Reading the prepared store (prepare.py): random access to (256, 256, 3) uint8 rows by memory map (another side
with alexnet-prepare size=N, recorded in manifest.json).

Why raw uint8 rather than JPEG shards: a training sample then costs a 224x224x3 slice copy instead of a JPEG
decode, which is what lets 2 CPU cores feed a GPU (``make bench-data`` measures both; see README). The cost is
disk: 196 KiB per image, about 250 GB for the ILSVRC-2012 training set.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from alexnet_lit.config import SIDE


class MissingStore(FileNotFoundError):
    pass


def check_store(root: str | Path, split: str) -> Path:
    root = Path(root).expanduser()
    manifest = root / "manifest.json"
    if not manifest.is_file():
        raise MissingStore(f"{manifest} not found: data.root must be a folder made by alexnet-prepare")
    if not json.loads(manifest.read_text()).get("complete"):
        raise MissingStore(f"data.root={root} is not a complete store (an interrupted or failed alexnet-prepare): "
                           f"run the same alexnet-prepare command again to finish it")
    if not (root / f"{split}.u8").is_file():
        raise MissingStore(f"{root / (split + '.u8')} not found: was the {split} split prepared?")
    return root


class PreparedSplit(Dataset):
    """Rows of ``<split>.u8`` with label >= 0 (files skipped by prepare have label -1 and are left out)."""

    def __init__(self, root: str | Path, split: str, transform=None) -> None:
        self.root = check_store(root, split)
        labels = np.load(self.root / f"{split}_labels.npy")
        self.total = len(labels)
        self.rows = np.flatnonzero(labels >= 0)
        self.targets = labels[self.rows].astype(np.int64)
        self.path, self.transform = self.root / f"{split}.u8", transform
        self.size = store_size(self.root)
        self._arr: np.memmap | None = None  # opened lazily, once per DataLoader worker

    def __len__(self) -> int:
        return len(self.rows)

    def class_counts(self) -> dict[str, int]:
        """Images per class folder of the training split, as manifest.json records them."""
        manifest = json.loads((self.root / "manifest.json").read_text())
        return manifest["splits"]["train"]["per_class"]

    def image(self, i: int) -> np.ndarray:
        if self._arr is None:
            # mode "c": copy-on-write, so torch gets a writable array without a copy (nothing writes to it)
            self._arr = np.memmap(self.path, dtype=np.uint8, mode="c", shape=(self.total, self.size, self.size, 3))
        return self._arr[self.rows[i]]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = self.image(i)
        x = self.transform(img) if self.transform else torch.from_numpy(np.array(img)).permute(2, 0, 1)
        return x, int(self.targets[i])

    def __getstate__(self):  # workers reopen the memory map
        return {**self.__dict__, "_arr": None}


def store_size(root: str | Path) -> int:
    """The side of the store's square images (alexnet-prepare size=..., 256 by default and before it existed)."""
    manifest = json.loads((Path(root).expanduser() / "manifest.json").read_text())
    return int(manifest.get("params", {}).get("size", SIDE))


def load_stats(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingStore(f"{path} not found (data.stats_path): the statistics come from alexnet-prepare, which "
                           f"writes stats.npz next to the store; run it, or set data.stats_path")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}
