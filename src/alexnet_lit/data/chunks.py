"""The store's unit of work (prepare.py, steps 2-4): one image to its square (``load_square``), a chunk of rows
decoded by a worker (``process_chunk``) with the sums for the statistics, what the chunk was made from
(``chunk_identity``), and a split's progress saved atomically with fixed bytes (``SplitState``, ``save_npz``)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from alexnet_lit.config import SIDE

Image.MAX_IMAGE_PIXELS = 200_000_000  # ImageNet has images up to ~60 Mpx; PIL's default warns at 89 Mpx


class BadImage(Exception):
    """An undecodable file: ``path`` and ``reason`` kept apart for the manifest."""

    def __init__(self, message: str, path: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.path, self.reason = path, reason



def load_square(path: str | os.PathLike, size: int = SIDE) -> np.ndarray:
    """Decode ``path`` and return its central square, shorter side rescaled to ``size``: (size, size, 3) uint8."""
    try:
        with Image.open(path) as im:
            im.draft("RGB", (size, size))  # JPEG: decode at 1/2, 1/4 or 1/8 scale while both sides stay >= size
            im = im.convert("RGB")
            w, h = im.size
            s = min(w, h)
            box = ((w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2)
            out = im.resize((size, size), Image.Resampling.BILINEAR, box=box)
            return np.asarray(out, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        reason = f"cannot decode ({type(e).__name__}: {str(e) or type(e).__name__})"
        raise BadImage(f"{path}: {reason}", str(path), reason) from e


def chunk_identity(root: Path, paths: list[str], labels: list[int]) -> bytes:
    """What a chunk was made from: each file's path below ``root``, size, modification time and label. A file
    replaced in place, renamed, added or removed changes it (stat only: hashing contents would cost a second read
    of every image)."""
    h = hashlib.sha1()
    for p, label in zip(paths, labels):
        st = os.stat(p)
        h.update(f"{os.path.relpath(p, root)}\0{st.st_size}\0{st.st_mtime_ns}\0{label}\n".encode())
    return h.hexdigest().encode()


def save_npz(path: Path, **arrays) -> None:
    """``np.savez``, but atomic (temporary name in the same folder, then rename) and with fixed zip timestamps:
    the same arrays give the same bytes on every run."""
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for name, value in arrays.items():
            with zf.open(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w",
                         force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)
    os.replace(tmp, path)


@dataclass
class ChunkResult:
    chunk: int
    valid: np.ndarray  # bool per row
    sum_image: np.ndarray | None  # float64 (size, size, 3), training split only
    sum_rgb: np.ndarray
    sum_outer: np.ndarray
    pixels: int
    errors: list[list[str]] = field(default_factory=list)  # [path, reason] per undecodable file
    lengths: np.ndarray | None = None  # format=jpeg: bytes of each row's JPEG in the chunk's shard (0: none)


@dataclass(frozen=True)
class Codec:
    """How rows are stored: ``quality`` None = raw uint8 rows in one file, else one JPEG shard per chunk."""

    quality: int | None = None
    chroma: str = "full"


RAW = Codec()


def shard_path(folder: str | Path, chunk: int) -> Path:
    """format=jpeg: the file holding chunk ``chunk``'s JPEGs, back to back (offsets: the split's index)."""
    return Path(folder) / f"chunk-{chunk:06d}.bin"


class Sums:
    """The statistics' running sums over uint8 squares: integers, exact in float64 (prepare.py, step 4)."""

    def __init__(self, size: int) -> None:
        self.image, self.rgb, self.outer, self.pixels = np.zeros((size, size, 3)), np.zeros(3), np.zeros((3, 3)), 0

    def add(self, img: np.ndarray, sign: int = 1) -> None:
        img = img.astype(np.float64)
        flat = img.reshape(-1, 3)
        self.image += sign * img
        self.rgb += sign * flat.sum(0)
        self.outer += sign * (flat.T @ flat)
        self.pixels += sign * flat.shape[0]


def process_chunk(store: str, n: int, chunk: int, start: int, paths: list[str], with_stats: bool,
                  size: int = SIDE, codec: Codec = RAW) -> ChunkResult:
    """Decode the chunk's files into rows ``start..`` of the store: the raw file ``store``, or (JPEG) a new shard in
    the folder ``store``, written under a temporary name and renamed, so a shard is whole or absent. The sums are
    of the pixels training will read: after the JPEG round trip."""
    from alexnet_lit.data import jpeg

    raw = codec.quality is None
    arr = np.memmap(store, dtype=np.uint8, mode="r+", shape=(n, size, size, 3)) if raw else None
    valid, lengths, blobs = np.zeros(len(paths), dtype=bool), np.zeros(len(paths), dtype=np.int64), []
    sums, errors = Sums(size), []
    for i, p in enumerate(paths):
        try:
            img = load_square(p, size)
        except BadImage as e:
            errors.append([e.path, e.reason])
            if raw:
                arr[start + i] = 0
            continue
        if raw:
            arr[start + i] = img
        else:
            blob = jpeg.encode(img, codec.quality, codec.chroma)
            blobs.append(blob)
            lengths[i] = len(blob)
            img = jpeg.decode(blob).numpy()
        valid[i] = True
        if with_stats:
            sums.add(img)
    if raw:
        arr.flush()
        del arr
    else:
        shard = shard_path(store, chunk)
        tmp = shard.with_name(shard.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(b"".join(blobs))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, shard)
    return ChunkResult(chunk, valid, sums.image if with_stats else None, sums.rgb, sums.outer, sums.pixels, errors,
                       None if raw else lengths)


class SplitState:
    """Finished chunks, their identities, each row's JPEG length and the running sums, saved together atomically
    (``save_npz``)."""

    def __init__(self, path: Path, n: int, chunks: int, size: int = SIDE) -> None:
        self.path, self.n, self.size = path, n, size
        self.done = np.zeros(chunks, dtype=bool)
        self.identity = np.zeros(chunks, dtype="S40")  # chunk_identity of each finished chunk
        self.valid = np.zeros(n, dtype=bool)
        self.lengths = np.zeros(n, dtype=np.int64)  # format=jpeg: each row's bytes in its chunk's shard
        self.sums = Sums(size)
        self.errors: dict[int, list[list[str]]] = {}
        if path.exists():
            z = np.load(path, allow_pickle=False)
            if "lengths" in z.files and z["done"].shape == self.done.shape and z["valid"].shape == self.valid.shape:
                self.done, self.identity, self.valid = z["done"].copy(), z["identity"].copy(), z["valid"].copy()
                self.lengths = z["lengths"].copy()
                self.sums.image, self.sums.rgb, self.sums.outer = z["sum_image"], z["sum_rgb"], z["sum_outer"]
                self.sums.pixels = int(z["pixels"])
                self.errors = {int(k): v for k, v in json.loads(str(z["errors"])).items()}

    def merge(self, r: ChunkResult, start: int, identity: bytes) -> None:
        self.done[r.chunk], self.identity[r.chunk] = True, identity
        self.valid[start : start + len(r.valid)] = r.valid
        if r.lengths is not None:
            self.lengths[start : start + len(r.lengths)] = r.lengths
        if r.sum_image is not None:
            self.sums.image += r.sum_image
            self.sums.rgb += r.sum_rgb
            self.sums.outer += r.sum_outer
            self.sums.pixels += r.pixels
        if r.errors:
            self.errors[r.chunk] = r.errors

    def undo(self, chunk: int, start: int, stop: int, rows: Iterable[np.ndarray] | None) -> None:
        """Forget a finished chunk whose files changed: subtract its valid ``rows`` (decoded, in order) from the
        sums (exact: integers); ``rows`` None for a split without statistics."""
        for img in rows if rows is not None else ():
            self.sums.add(img, -1)
        self.valid[start:stop], self.lengths[start:stop] = False, 0
        self.done[chunk], self.identity[chunk] = False, b""
        self.errors.pop(chunk, None)

    def save(self) -> None:
        save_npz(self.path, done=self.done, identity=self.identity, valid=self.valid, lengths=self.lengths,
                 sum_image=self.sums.image, sum_rgb=self.sums.rgb, sum_outer=self.sums.outer, pixels=self.sums.pixels,
                 errors=json.dumps({str(k): v for k, v in sorted(self.errors.items())}))

    def all_errors(self) -> list[list[str]]:
        return [e for k in sorted(self.errors) for e in self.errors[k]]


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: a SIGKILLed parent cannot stop its workers, so each one watches for it to go
    (measured: without this, every SIGKILLed run left its workers blocked forever, 420 MB each). Ctrl-C and
    SIGTERM sent to the whole process group are the parent's to handle: it saves and stops the pool."""
    from alexnet_lit.signals import ignore_in_worker

    ignore_in_worker()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def chunks_of(n: int, size: int) -> Iterator[tuple[int, int, int]]:
    for c, start in enumerate(range(0, n, size)):
        yield c, start, min(n, start + size)

