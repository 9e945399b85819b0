"""Reading the prepared store (prepare.py) by row, in either format its manifest records:

- ``jpeg`` (the default): ``<split>.jpeg/chunk-NNNNNN.bin`` hold each chunk's JPEGs back to back and
  ``<split>_index.npy`` each row's (chunk, offset, length); a row is read with one ``pread`` and decoded
  (data/jpeg.py), in the DataLoader workers, or on the device with ``data.augment_on=device``;
- ``raw``: ``<split>.u8``, (rows, 256, 256, 3) uint8, a row read with one ``pread``: a crop is a row copy, no
  decode, at 192 KiB an image (about 262 GB for the ILSVRC-2012 training and validation sets).

``make bench-data`` measures both, from memory and from disk; README "Which store" says which fits which machine.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from alexnet_lit.config import SIDE, StoreFormat
from alexnet_lit.data import jpeg
from alexnet_lit.data.chunks import shard_path
from alexnet_lit.data.jpeg import BadSample


class MissingStore(FileNotFoundError):
    pass


def store_format(root: Path) -> StoreFormat:
    """The format ``manifest.json`` records (stores made before format existed are raw)."""
    manifest = json.loads((root / "manifest.json").read_text())
    return StoreFormat(manifest.get("params", {}).get("format", StoreFormat.raw.value))


def check_store(root: str | Path, split: str) -> Path:
    """Before any work: the store is complete, holds what its manifest says, and no file is missing or cut short."""
    root = Path(root).expanduser()
    manifest = root / "manifest.json"
    if not manifest.is_file():
        raise MissingStore(f"{manifest} not found: data.root must be a folder made by alexnet-prepare")
    if not json.loads(manifest.read_text()).get("complete"):
        raise MissingStore(f"data.root={root} is not a complete store (an interrupted or failed alexnet-prepare): "
                           f"run the same alexnet-prepare command again to finish it")
    fmt, raw, shards = store_format(root), root / f"{split}.u8", root / f"{split}.jpeg"
    index = root / f"{split}_index.npy"
    mine, other = (raw, shards) if fmt == StoreFormat.raw else (shards, raw)
    if not mine.exists():
        if other.exists():
            raise MissingStore(f"{manifest} says format={fmt.value}, but {root} holds {other.name} and no {mine.name}: "
                               f"the files are of another store; run alexnet-prepare again into a new out_dir")
        raise MissingStore(f"{mine} not found: was the {split} split prepared?")
    labels = root / f"{split}_labels.npy"
    if not labels.is_file():
        raise MissingStore(f"{labels} not found: the store is incomplete; run alexnet-prepare again")
    total, side = len(np.load(labels, mmap_mode="r")), store_size(root)
    if fmt == StoreFormat.raw:
        if (got := raw.stat().st_size) != total * side * side * 3:
            raise MissingStore(f"{raw} is {got} bytes, the store's {total} rows need {total * side * side * 3}: "
                               f"the file was cut short or replaced; run alexnet-prepare again into a new out_dir")
        return root
    if not index.is_file():
        raise MissingStore(f"{index} not found: a jpeg store reads its rows through it; run alexnet-prepare again "
                           f"into a new out_dir")
    rows = np.load(index)
    ends = np.zeros(int(rows[:, 0].max(initial=-1)) + 1, dtype=np.int64)
    np.maximum.at(ends, rows[:, 0], rows[:, 1] + rows[:, 2])
    for chunk, end in enumerate(ends):
        shard = shard_path(shards, chunk)
        size = shard.stat().st_size if shard.is_file() else None
        if size != end and (end or size is not None):
            found = "missing" if size is None else f"{size} bytes"
            raise MissingStore(f"{shard} is {found}, {index.name} says {end}: the shard was cut short or replaced; "
                               f"run alexnet-prepare again into a new out_dir")
    return root


class PreparedSplit(Dataset):
    """Rows of the store with label >= 0 (files skipped by prepare have label -1 and are left out). ``encoded``:
    hand the transform a row's JPEG bytes (jpeg.Encoded) instead of its pixels, for a decode on the device;
    ``skip_bad``: a row that does not decode is left out of its batch with a warning naming it (default: fail)."""

    def __init__(self, root: str | Path, split: str, transform=None, encoded: bool = False,
                 skip_bad: bool = False) -> None:
        self.root = check_store(root, split)
        self.split, self.format = split, store_format(self.root)
        labels = np.load(self.root / f"{split}_labels.npy")
        self.total = len(labels)
        self.rows = np.flatnonzero(labels >= 0)
        self.targets = labels[self.rows].astype(np.int64)
        self.transform, self.skip_bad = transform, skip_bad
        self.encoded = encoded and self.format == StoreFormat.jpeg
        self.size = store_size(self.root)
        if self.format == StoreFormat.raw:
            self.path = self.root / f"{split}.u8"
        else:
            self.path, self.index = self.root / f"{split}.jpeg", np.load(self.root / f"{split}_index.npy")
        self._fd: int | None = None  # raw: the rows' file, opened lazily, once per DataLoader worker
        self._fds: dict[int, int] = {}  # jpeg: open shards, per worker

    def __len__(self) -> int:
        return len(self.rows)

    def class_counts(self) -> dict[str, int]:
        """Images per class folder of the training split, as manifest.json records them."""
        manifest = json.loads((self.root / "manifest.json").read_text())
        return manifest["splits"]["train"]["per_class"]

    def describe(self, i: int, source: bool = True) -> str:
        """Which sample: split, row, where its bytes are and (``source``: a read of ``<split>_files.txt``, for
        errors) the file prepare made it from."""
        row = int(self.rows[i])
        where = f"{self.path}" if self.format == StoreFormat.raw else \
            f"{shard_path(self.path, int(self.index[row, 0]))} at byte {int(self.index[row, 1])}"
        files, name = self.root / f"{self.split}_files.txt", ""
        if source and files.is_file():
            with open(files) as f:
                name = next((line.strip() for k, line in enumerate(f) if k == row), "")
        return f"{self.split} row {row}" + (f" ({name})" if name else "") + f" in {where}"

    def encoded_bytes(self, i: int) -> torch.Tensor:
        """format=jpeg: the row's JPEG as a 1-D uint8 tensor, one pread from its shard."""
        chunk, offset, length = (int(v) for v in self.index[self.rows[i]])
        if (fd := self._fds.get(chunk)) is None:
            if len(self._fds) >= 64:  # a worker touches every shard over an epoch: keep few open
                os.close(self._fds.pop(next(iter(self._fds))))
            fd = self._fds[chunk] = os.open(shard_path(self.path, chunk), os.O_RDONLY)
        data = os.pread(fd, length, offset)
        if len(data) != length:
            raise BadSample(f"{self.describe(i)}: {len(data)} of its {length} bytes are there; {jpeg.FIX}")
        return torch.frombuffer(bytearray(data), dtype=torch.uint8)

    def image(self, i: int) -> np.ndarray | torch.Tensor:
        """The row's (size, size, 3) uint8 pixels."""
        if self.format == StoreFormat.jpeg:
            data = self.encoded_bytes(i)
            try:
                return jpeg.decode(data)
            except RuntimeError as e:
                raise BadSample(f"{self.describe(i)}: cannot decode ({jpeg.reason(e)}); {jpeg.FIX}") from None
        # One pread per row, not a memory map: measured on a 24 GiB store read from disk (bench_store.py
        # --disk-gb 24), a mapped row's page faults made the kernel read 5.4 MB ahead for each 192 KiB row (236 img/s
        # at 1,282 MB/s); and a private map of a store larger than memory fails with ENOMEM.
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        row = np.empty((self.size, self.size, 3), dtype=np.uint8)
        if os.preadv(self._fd, [row], int(self.rows[i]) * row.nbytes) != row.nbytes:
            raise BadSample(f"{self.describe(i)}: the file ends before this row; {jpeg.FIX}")
        return row

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int] | None:
        try:
            if self.encoded:
                img = jpeg.Encoded(self.encoded_bytes(i), self.size, self.describe(i, source=False))
            else:
                img = self.image(i)
        except BadSample as e:
            if not self.skip_bad:
                raise
            warnings.warn(f"data.skip_bad=true: leaving out {e}", stacklevel=1)
            return None
        if self.transform:
            x = self.transform(img)
        else:
            x = torch.as_tensor(np.array(img)).permute(2, 0, 1).contiguous()
        return x, int(self.targets[i])

    def __getstate__(self):  # workers open the files again
        return {**self.__dict__, "_fd": None, "_fds": {}}

    def __del__(self) -> None:
        for fd in [*getattr(self, "_fds", {}).values(), *filter(None, [getattr(self, "_fd", None)])]:
            os.close(fd)


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
