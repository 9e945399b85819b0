"""Raw images to a 256 px store, once: the paper's section 2 preprocessing, with training-set statistics.

    alexnet-prepare source.root=/data/imagenet out_dir=/data/imagenet-256      # then data=imagenet_prepared

Steps:
1. List the split's files (``ROOT/<split>/<wnid>/*``) in sorted order and give each a row in a uint8 array
   ``<split>.u8`` of shape (N, 256, 256, 3): its position is fixed before any work, so work can be redone.
2. Decode each image (PIL; JPEGs at a DCT-reduced scale via ``draft``, never below 256 on the shorter side),
   convert to RGB (CMYK, grayscale, palette, PNG-in-a-.JPEG all end as RGB), rescale the shorter side to 256
   and take the central 256x256 square (section 2). EXIF orientation is ignored, as in torchvision's
   ImageFolder and the paper's pipeline: pixels are used as stored.
3. Chunks of rows go to worker processes, which write their rows and return float64 sums for the statistics.
4. The parent merges the sums and saves them with the set of finished chunks, atomically: an interrupted run
   (Ctrl-C, SIGKILL) continues where it stopped and ends with the same bytes as an uninterrupted one.
5. At the end of the training split: the per-pixel mean image and the RGB covariance with its eigenvalues and
   eigenvectors (for PCA lighting, section 4.1), in float64 (``stats.npz``), and ``manifest.json`` with counts
   per class and split, the source, the parameters and every skipped file with its reason.

A file that cannot be decoded (truncated, empty, not an image) is listed with its path and reason; by default the
run then exits non-zero without marking the store complete. ``skip_bad=true`` records such files in the manifest
and leaves their rows out (label -1), so nothing is dropped silently.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from alexnet_lit.data.classes import class_index

SIZE = 256
VERSION = 1
Image.MAX_IMAGE_PIXELS = 200_000_000  # ImageNet has images up to ~60 Mpx; PIL's default warns at 89 Mpx


class BadImage(Exception):
    pass


class Interrupted(Exception):
    pass


class SpeedColumn(ProgressColumn):
    """Images per second in the progress bar."""

    def render(self, task) -> Text:
        return Text(f"{task.speed or 0:7.0f} img/s")


def load_square(path: str | os.PathLike, size: int = SIZE) -> np.ndarray:
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
        reason = str(e) or type(e).__name__
        raise BadImage(f"{path}: cannot decode ({type(e).__name__}: {reason})") from e


def list_split(root: Path, split: str, custom_classes: bool = False) -> tuple[list[str], list[int]]:
    """Sorted (path, label) of ``root/split/<class>/*`` with canonical ILSVRC labels."""
    base = root / split
    if not base.is_dir():
        raise FileNotFoundError(f"{base} does not exist: source.root must hold {split}/<wnid>/ image folders")
    folders = sorted(p for p in base.iterdir() if p.is_dir())
    if not folders:
        raise FileNotFoundError(f"{base} has no class folders: expected {split}/<wnid>/*.JPEG")
    index = class_index(folders, custom_classes)
    paths, labels = [], []
    for folder in folders:
        for f in sorted(folder.iterdir()):
            if f.is_file() and not f.name.startswith("."):
                paths.append(str(f))
                labels.append(index[folder.name])
    return paths, labels


@dataclass
class ChunkResult:
    chunk: int
    valid: np.ndarray  # bool per row
    sum_image: np.ndarray | None  # float64 (SIZE, SIZE, 3), training split only
    sum_rgb: np.ndarray
    sum_outer: np.ndarray
    pixels: int
    errors: list[str] = field(default_factory=list)


def process_chunk(store: str, n: int, chunk: int, start: int, paths: list[str], with_stats: bool) -> ChunkResult:
    arr = np.memmap(store, dtype=np.uint8, mode="r+", shape=(n, SIZE, SIZE, 3))
    valid = np.zeros(len(paths), dtype=bool)
    sum_image = np.zeros((SIZE, SIZE, 3), np.float64) if with_stats else None
    sum_rgb, sum_outer, pixels, errors = np.zeros(3), np.zeros((3, 3)), 0, []
    for i, p in enumerate(paths):
        try:
            img = load_square(p)
        except BadImage as e:
            errors.append(str(e))
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
    """Finished chunks and the running sums, saved together atomically (np.savez to a temp name, then rename)."""

    def __init__(self, path: Path, n: int, chunks: int) -> None:
        self.path, self.n = path, n
        self.done = np.zeros(chunks, dtype=bool)
        self.valid = np.zeros(n, dtype=bool)
        self.sum_image = np.zeros((SIZE, SIZE, 3), np.float64)
        self.sum_rgb, self.sum_outer, self.pixels = np.zeros(3), np.zeros((3, 3)), 0
        self.errors: dict[int, list[str]] = {}
        if path.exists():
            z = np.load(path, allow_pickle=False)
            if z["done"].shape == self.done.shape and z["valid"].shape == self.valid.shape:
                self.done, self.valid = z["done"].copy(), z["valid"].copy()
                self.sum_image, self.sum_rgb, self.sum_outer = z["sum_image"], z["sum_rgb"], z["sum_outer"]
                self.pixels = int(z["pixels"])
                self.errors = {int(k): v for k, v in json.loads(str(z["errors"])).items()}

    def merge(self, r: ChunkResult, start: int) -> None:
        self.done[r.chunk] = True
        self.valid[start : start + len(r.valid)] = r.valid
        if r.sum_image is not None:
            self.sum_image += r.sum_image
            self.sum_rgb += r.sum_rgb
            self.sum_outer += r.sum_outer
            self.pixels += r.pixels
        if r.errors:
            self.errors[r.chunk] = r.errors

    def save(self) -> None:
        tmp = self.path.with_name(self.path.stem + ".tmp.npz")
        np.savez(tmp, done=self.done, valid=self.valid, sum_image=self.sum_image, sum_rgb=self.sum_rgb,
                 sum_outer=self.sum_outer, pixels=self.pixels, errors=json.dumps(self.errors))
        os.replace(tmp, self.path)

    def all_errors(self) -> list[str]:
        return [e for k in sorted(self.errors) for e in self.errors[k]]


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: a SIGKILLed parent cannot stop its workers, so each one watches for it to go
    (measured: without this, every SIGKILLed run left its workers blocked forever, 420 MB each)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def chunks_of(n: int, size: int) -> Iterator[tuple[int, int, int]]:
    for c, start in enumerate(range(0, n, size)):
        yield c, start, min(n, start + size)


def prepare_split(root: Path, out: Path, split: str, workers: int, chunk_size: int, custom_classes: bool,
                  progress=None, save_every: float = 5.0) -> tuple[SplitState, list[str], list[int]]:
    paths, labels = list_split(root, split, custom_classes)
    n = len(paths)
    store = out / f"{split}.u8"
    if not store.exists() or store.stat().st_size != n * SIZE * SIZE * 3:
        np.memmap(store, dtype=np.uint8, mode="w+", shape=(n, SIZE, SIZE, 3)).flush()
    plan = list(chunks_of(n, chunk_size))
    state = SplitState(out / ".progress" / f"{split}.npz", n, len(plan))
    todo = [(c, s, e) for c, s, e in plan if not state.done[c]]
    task = progress.add_task(split, total=n, completed=n - sum(e - s for _, s, e in todo)) if progress else None
    with_stats = split == "train"
    last_save = time.monotonic()
    pool = ProcessPoolExecutor(max_workers=max(1, workers), initializer=_exit_with_parent, initargs=(os.getpid(),))
    try:
        futures = {pool.submit(process_chunk, str(store), n, c, s, paths[s:e], with_stats): s for c, s, e in todo}
        for fut in as_completed(futures):
            r = fut.result()
            state.merge(r, futures[fut])
            if time.monotonic() - last_save >= save_every:
                state.save()
                last_save = time.monotonic()
            if progress:
                progress.advance(task, len(r.valid))
    except KeyboardInterrupt:  # Ctrl-C: keep what is finished, drop what is queued, let the caller say so
        state.save()
        pool.shutdown(wait=False, cancel_futures=True)
        raise Interrupted(f"{split}: {int(state.done.sum())} of {len(plan)} chunks done") from None
    pool.shutdown()
    state.save()
    return state, paths, labels


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


def prepare(root: str | os.PathLike, out_dir: str | os.PathLike, splits: tuple[str, ...] = ("train", "val"),
            workers: int = 1, chunk_size: int = 256, skip_bad: bool = False, custom_classes: bool = False,
            show_progress: bool = True, save_every: float = 5.0) -> dict:
    """Prepare every split; returns the manifest. Raises BadImage listing every undecodable file unless skip_bad."""
    root, out = Path(root).expanduser(), Path(out_dir).expanduser()
    (out / ".progress").mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    params = {"size": SIZE, "resize": "shorter side to 256, central square (section 2)", "decoder": "PIL",
              "exif_orientation": "ignored", "version": VERSION, "skip_bad": skip_bad, "custom_classes": custom_classes}
    manifest: dict = {"source": str(root), "params": params, "splits": {}, "skipped": [], "complete": False}
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), SpeedColumn(),
               TimeRemainingColumn()]
    bad: list[str] = []
    with Progress(*columns, disable=not show_progress) as progress:
        for split in splits:
            state, paths, labels = prepare_split(root, out, split, workers, chunk_size, custom_classes, progress,
                                                 save_every)
            errors = state.all_errors()
            bad += errors
            label_arr = np.where(state.valid, np.asarray(labels, dtype=np.int64), -1)
            np.save(out / f"{split}_labels.npy", label_arr)
            counts = Counter(int(x) for x in label_arr[label_arr >= 0])
            manifest["splits"][split] = {"images": int(state.valid.sum()), "files": len(paths),
                                         "per_class": {str(k): counts[k] for k in sorted(counts)}}
            manifest["skipped"] += [{"split": split, "error": e} for e in errors]
            if split == "train" and (skip_bad or not errors):
                np.savez(out / "stats.npz", **statistics(state))
    if bad and not skip_bad:
        manifest_path.write_text(json.dumps(manifest, indent=1))
        raise BadImage(f"{len(bad)} file(s) could not be decoded:\n  " + "\n  ".join(bad) +
                       "\nFix or remove them, or run again with skip_bad=true to leave them out "
                       "(they are then listed in manifest.json).")
    manifest["complete"] = True
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return manifest
