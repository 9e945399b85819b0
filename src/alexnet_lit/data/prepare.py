"""Raw images to a 256 px store, once: the paper's section 2 preprocessing, with training-set statistics.

    alexnet-prepare root=/data/imagenet out_dir=/data/imagenet-256      # then data=imagenet_prepared
    alexnet-prepare root=/data/other out_dir=/data/imagenet-256 overwrite=true   # rebuild a store of another source

Steps:
1. List the split's files (``ROOT/<split>/<wnid>/*``) in sorted order and give each a row in a uint8 array
   ``<split>.u8`` of shape (N, 256, 256, 3): its position is fixed before any work, so work can be redone.
2. Decode each image (PIL; JPEGs at a DCT-reduced scale via ``draft``, never below 256 on the shorter side),
   convert to RGB (CMYK, grayscale, palette, PNG-in-a-.JPEG all end as RGB), rescale the shorter side to 256
   and take the central 256x256 square (section 2; ``size=N`` for another side). EXIF orientation is ignored,
   as in torchvision's ImageFolder and the paper's pipeline: pixels are used as stored.
3. Chunks of rows go to worker processes, which write their rows and return float64 sums for the statistics.
4. The parent merges the sums and saves them with the set of finished chunks, atomically, together with each
   chunk's *identity*: a hash of its files' paths (relative to the root), sizes, modification times and labels.
   An interrupted run (Ctrl-C, SIGTERM, SIGKILL) continues where it stopped and ends with the same bytes as an
   uninterrupted one. On every run, a finished chunk whose files changed since (a bad file replaced, a file
   added) is redone: its old rows are subtracted from the sums first. The sums hold integers (pixel values and
   their products), exactly representable in float64 up to ImageNet's size, so subtracting and re-adding is
   exact and the result equals a fresh prepare of the current tree byte for byte.
5. At the end of the training split: the per-pixel mean image and the RGB covariance with its eigenvalues and
   eigenvectors (for PCA lighting, section 4.1), in float64 (``stats.npz``), and ``manifest.json`` with counts
   per class (keyed by class folder, the wnid) and split, the source, the parameters and every skipped file with
   its path and reason. ``.npz`` files are written with fixed zip timestamps, so equal contents are equal bytes.

A store remembers its source folder: preparing a different ``root`` into the same ``out_dir`` is refused, naming
both (``overwrite=true`` rebuilds it). Until a run ends, ``manifest.json`` says ``"complete": false`` and the data
module refuses the folder. A file that cannot be decoded (truncated, empty, not an image) is listed with its path
and reason; by default the run then exits non-zero without marking the store complete. ``skip_bad=true`` records
such files in the manifest and leaves their rows out (label -1), so nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from alexnet_lit.config import SIDE, ConfigError, PrepareConfig, build
from alexnet_lit.data.classes import class_index
from alexnet_lit.machine import default_workers

VERSION = 2  # 2: chunk identities in the progress state; skipped files as path + reason
Image.MAX_IMAGE_PIXELS = 200_000_000  # ImageNet has images up to ~60 Mpx; PIL's default warns at 89 Mpx


class BadImage(Exception):
    """An undecodable file: ``path`` and ``reason`` kept apart for the manifest."""

    def __init__(self, message: str, path: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.path, self.reason = path, reason


class StoreMismatch(ValueError):
    """``out_dir`` holds a store made from another source folder."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM during prepare, after the finished chunks were saved; ``signal`` is what stopped it."""

    def __init__(self, message: str, signal: BaseException) -> None:
        super().__init__(message)
        self.signal = signal


class SpeedColumn(ProgressColumn):
    """Images per second in the progress bar."""

    def render(self, task) -> Text:
        return Text(f"{task.speed or 0:7.0f} img/s")


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


def list_split(root: Path, split: str, custom_classes: bool = False) -> tuple[list[str], list[int], list[str]]:
    """Sorted (path, label, class folder name) of ``root/split/<class>/*`` with canonical ILSVRC labels."""
    base = root / split
    if not base.is_dir():
        raise ConfigError(f"{base} does not exist: root must hold {split}/<wnid>/ image folders")
    folders = sorted(p for p in base.iterdir() if p.is_dir())
    if not folders:
        raise ConfigError(f"{base} has no class folders: expected {split}/<wnid>/*.JPEG")
    index = class_index(folders, custom_classes)
    paths, labels, names = [], [], []
    for folder in folders:
        for f in sorted(folder.iterdir()):
            if f.is_file() and not f.name.startswith("."):
                paths.append(str(f))
                labels.append(index[folder.name])
                names.append(folder.name)
    return paths, labels, names


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


def process_chunk(store: str, n: int, chunk: int, start: int, paths: list[str], with_stats: bool,
                  size: int = SIDE) -> ChunkResult:
    arr = np.memmap(store, dtype=np.uint8, mode="r+", shape=(n, size, size, 3))
    valid = np.zeros(len(paths), dtype=bool)
    sum_image = np.zeros((size, size, 3), np.float64) if with_stats else None
    sum_rgb, sum_outer, pixels, errors = np.zeros(3), np.zeros((3, 3)), 0, []
    for i, p in enumerate(paths):
        try:
            img = load_square(p, size)
        except BadImage as e:
            errors.append([e.path, e.reason])
            arr[start + i] = 0
            continue
        arr[start + i] = img
        valid[i] = True
        if with_stats:
            sum_image += img
            flat = img.reshape(-1, 3).astype(np.float64)
            sum_rgb += flat.sum(0)
            sum_outer += flat.T @ flat
            pixels += flat.shape[0]
    arr.flush()
    del arr
    return ChunkResult(chunk, valid, sum_image, sum_rgb, sum_outer, pixels, errors)


class SplitState:
    """Finished chunks, their identities and the running sums, saved together atomically (``save_npz``)."""

    def __init__(self, path: Path, n: int, chunks: int, size: int = SIDE) -> None:
        self.path, self.n = path, n
        self.done = np.zeros(chunks, dtype=bool)
        self.identity = np.zeros(chunks, dtype="S40")  # chunk_identity of each finished chunk
        self.valid = np.zeros(n, dtype=bool)
        self.sum_image = np.zeros((size, size, 3), np.float64)
        self.sum_rgb, self.sum_outer, self.pixels = np.zeros(3), np.zeros((3, 3)), 0
        self.errors: dict[int, list[list[str]]] = {}
        if path.exists():
            z = np.load(path, allow_pickle=False)
            if "identity" in z.files and z["done"].shape == self.done.shape and z["valid"].shape == self.valid.shape:
                self.done, self.identity, self.valid = z["done"].copy(), z["identity"].copy(), z["valid"].copy()
                self.sum_image, self.sum_rgb, self.sum_outer = z["sum_image"], z["sum_rgb"], z["sum_outer"]
                self.pixels = int(z["pixels"])
                self.errors = {int(k): v for k, v in json.loads(str(z["errors"])).items()}

    def merge(self, r: ChunkResult, start: int, identity: bytes) -> None:
        self.done[r.chunk], self.identity[r.chunk] = True, identity
        self.valid[start : start + len(r.valid)] = r.valid
        if r.sum_image is not None:
            self.sum_image += r.sum_image
            self.sum_rgb += r.sum_rgb
            self.sum_outer += r.sum_outer
            self.pixels += r.pixels
        if r.errors:
            self.errors[r.chunk] = r.errors

    def undo(self, chunk: int, start: int, rows: np.ndarray, with_stats: bool) -> None:
        """Forget a finished chunk whose files changed: subtract the rows it added to the sums (exact: integers)."""
        valid = self.valid[start : start + len(rows)]
        if with_stats and valid.any():
            old = rows[valid].astype(np.float64)
            flat = old.reshape(-1, 3)
            self.sum_image -= old.sum(0)
            self.sum_rgb -= flat.sum(0)
            self.sum_outer -= flat.T @ flat
            self.pixels -= flat.shape[0]
        self.valid[start : start + len(rows)] = False
        self.done[chunk], self.identity[chunk] = False, b""
        self.errors.pop(chunk, None)

    def save(self) -> None:
        save_npz(self.path, done=self.done, identity=self.identity, valid=self.valid, sum_image=self.sum_image,
                 sum_rgb=self.sum_rgb, sum_outer=self.sum_outer, pixels=self.pixels,
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


def prepare_split(root: Path, out: Path, split: str, workers: int, chunk_size: int, custom_classes: bool,
                  progress=None, save_every: float = 5.0,
                  size: int = SIDE) -> tuple[SplitState, list[str], list[int], list[str]]:
    paths, labels, names = list_split(root, split, custom_classes)
    n = len(paths)
    store = out / f"{split}.u8"
    plan = list(chunks_of(n, chunk_size))
    state_path = out / ".progress" / f"{split}.npz"
    if not store.exists() or store.stat().st_size != n * size * size * 3:  # new, or the file count or size changed
        state_path.unlink(missing_ok=True)
        np.memmap(store, dtype=np.uint8, mode="w+", shape=(n, size, size, 3)).flush()
    state = SplitState(state_path, n, len(plan), size)
    with_stats = split == "train"
    identities = {c: chunk_identity(root, paths[s:e], labels[s:e]) for c, s, e in plan}
    changed = [(c, s, e) for c, s, e in plan if state.done[c] and state.identity[c] != identities[c]]
    if changed:  # files replaced, renamed or relabelled since those chunks were made: redo them
        rows = np.memmap(store, dtype=np.uint8, mode="r", shape=(n, size, size, 3))
        for c, s, e in changed:
            state.undo(c, s, rows[s:e], with_stats)
        del rows
        state.save()
    todo = [(c, s, e) for c, s, e in plan if not state.done[c]]
    task = progress.add_task(split, total=n, completed=n - sum(e - s for _, s, e in todo)) if progress else None
    last_save = time.monotonic()
    pool = ProcessPoolExecutor(max_workers=max(1, workers), initializer=_exit_with_parent, initargs=(os.getpid(),))
    try:
        futures = {pool.submit(process_chunk, str(store), n, c, s, paths[s:e], with_stats, size): (c, s)
                   for c, s, e in todo}
        for fut in as_completed(futures):
            r = fut.result()
            c, s = futures[fut]
            state.merge(r, s, identities[c])
            if time.monotonic() - last_save >= save_every:
                state.save()
                last_save = time.monotonic()
            if progress:
                progress.advance(task, len(r.valid))
    except BaseException as e:  # Ctrl-C, SIGTERM (see cli): keep what is finished, drop what is queued
        state.save()
        pool.shutdown(wait=False, cancel_futures=True)
        if isinstance(e, Exception):
            raise
        raise Interrupted(f"{split}: {int(state.done.sum())} of {len(plan)} chunks done", e) from None
    pool.shutdown()
    state.save()
    return state, paths, labels, names


def statistics(state: SplitState) -> dict[str, np.ndarray]:
    """Mean image and RGB covariance/eigen-decomposition, all float64 on the [0, 255] scale."""
    count = int(state.valid.sum())
    if count == 0:
        raise ValueError("no training image could be decoded: no statistics")
    mean_rgb = state.sum_rgb / state.pixels
    cov = state.sum_outer / state.pixels - np.outer(mean_rgb, mean_rgb)
    eigval, eigvec = np.linalg.eigh(cov)
    order = np.argsort(eigval)[::-1]
    return {"mean_image": state.sum_image / count, "rgb_mean": mean_rgb, "rgb_cov": cov,
            "eigval": eigval[order], "eigvec": eigvec[:, order], "count": np.int64(count)}


STORE_FILES = ("manifest.json", "stats.npz", "train.u8", "val.u8", "train_labels.npy", "val_labels.npy")


def recorded_source(out: Path) -> str | None:
    """The source folder a store (complete or not) in ``out`` was made from, or None."""
    manifest = out / "manifest.json"
    if manifest.is_file():
        try:
            return json.loads(manifest.read_text()).get("source")
        except (json.JSONDecodeError, UnicodeDecodeError):
            return "an unreadable manifest.json"
    if (out / ".progress").is_dir() and any((out / ".progress").iterdir()):
        return "an unknown source (a store from an earlier version or without a manifest)"
    return None


def check_out_dir(out: Path, root: Path, overwrite: bool) -> bool:
    """Refuse to mix two sources in one store (the CLI calls this before any work). True: ``out`` holds another
    source's store that ``overwrite`` will replace."""
    found = recorded_source(out)
    if found is None or found == str(root):
        return False
    if not overwrite:
        raise StoreMismatch(f"out_dir={out} holds a store of {found}, not of root={root}: choose another out_dir, "
                            f"or add overwrite=true to rebuild it from {root}")
    return True


def claim(out: Path, root: Path, overwrite: bool) -> None:
    """``check_out_dir``, then remove the other source's store files when overwriting."""
    if not check_out_dir(out, root, overwrite):
        return
    for name in STORE_FILES:
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / ".progress", ignore_errors=True)


def prepare(root: str | os.PathLike, out_dir: str | os.PathLike, show_progress: bool = True, **settings: Any) -> dict:
    """Prepare every split; returns the manifest. ``settings``: PrepareConfig's keys (config.py holds their
    defaults: ``prepare(raw, out, chunk_size=4)``). Raises BadImage listing every undecodable file unless
    skip_bad, StoreMismatch when ``out_dir`` holds a store of another source (unless ``overwrite``)."""
    c = build(PrepareConfig, {"root": str(root), "out_dir": str(out_dir), **settings}, "prepare")
    splits, chunk_size, skip_bad, custom_classes, size = c.splits, c.chunk_size, c.skip_bad, c.custom_classes, c.size
    workers, save_every, overwrite = c.workers or default_workers(), c.save_every, c.overwrite
    root, out = Path(root).expanduser().resolve(), Path(out_dir).expanduser().resolve()
    if not root.is_dir():
        raise ConfigError(f"root={root}: no such folder (it must hold train/<wnid>/ and val/<wnid>/)")
    out.mkdir(parents=True, exist_ok=True)
    claim(out, root, overwrite)
    (out / ".progress").mkdir(exist_ok=True)
    manifest_path = out / "manifest.json"
    params = {"size": size, "resize": f"shorter side to {size}, central square (section 2: 256)", "decoder": "PIL",
              "exif_orientation": "ignored", "version": VERSION, "skip_bad": skip_bad, "custom_classes": custom_classes}
    manifest: dict = {"source": str(root), "params": params, "splits": {}, "skipped": [], "complete": False}
    manifest_path.write_text(json.dumps(manifest, indent=1))  # incomplete until the end: never read half-made
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), SpeedColumn(),
               TimeRemainingColumn()]
    bad: list[list[str]] = []
    with Progress(*columns, disable=not show_progress) as progress:
        for split in splits:
            state, paths, labels, names = prepare_split(root, out, split, workers, chunk_size, custom_classes,
                                                        progress, save_every, size)
            errors = state.all_errors()
            bad += errors
            label_arr = np.where(state.valid, np.asarray(labels, dtype=np.int64), -1)
            np.save(out / f"{split}_labels.npy", label_arr)
            counts = Counter(name for name, ok in zip(names, state.valid) if ok)
            manifest["splits"][split] = {"images": int(state.valid.sum()), "files": len(paths),
                                         "per_class": {k: counts[k] for k in sorted(counts)}}
            manifest["skipped"] += [{"split": split, "path": p, "reason": r} for p, r in errors]
            if split == "train":
                (out / "stats.npz").unlink(missing_ok=True)
                if skip_bad or not errors:
                    save_npz(out / "stats.npz", **statistics(state))
    if bad and not skip_bad:
        manifest_path.write_text(json.dumps(manifest, indent=1))
        raise BadImage(f"{len(bad)} file(s) could not be decoded:\n  " + "\n  ".join(f"{p}: {r}" for p, r in bad) +
                       "\nFix or remove them and run the same command again (only their chunks are redone), or "
                       "run it with skip_bad=true to leave them out (they are then listed in manifest.json).")
    manifest["complete"] = True
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return manifest
