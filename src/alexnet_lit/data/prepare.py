"""Raw images to a 256 px store, once: the paper's section 2 preprocessing, with training-set statistics.

    alexnet-prepare root=/data/imagenet out_dir=/data/imagenet-256      # then data=imagenet_prepared
    alexnet-prepare root=/data/other out_dir=/data/imagenet-256 overwrite=true   # rebuild a store of another source

Steps:
1. List the split's files (``ROOT/<split>/<wnid>/*``) in sorted order and give each a row in a uint8 array
   ``<split>.u8`` of shape (N, 256, 256, 3): its position is fixed before any work, so work can be redone.
2. (chunks.py) Decode each image (PIL; JPEGs at a DCT-reduced scale via ``draft``, never below 256 on the shorter side),
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

import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from alexnet_lit.config import SIDE, ConfigError, PrepareConfig, StoreFormat, build
from alexnet_lit.data import jpeg
from alexnet_lit.data.chunks import (
    RAW,
    BadImage,
    Codec,
    SplitState,
    Sums,
    _exit_with_parent,
    chunk_identity,
    chunks_of,
    process_chunk,
    save_npz,
    shard_path,
)
from alexnet_lit.data.classes import class_index
from alexnet_lit.machine import default_workers

VERSION = 3  # 2: chunk identities in the progress state; skipped files as path + reason; 3: format=jpeg



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



def prepare_split(root: Path, out: Path, split: str, workers: int, chunk_size: int, custom_classes: bool,
                  progress=None, save_every: float = 5.0, size: int = SIDE,
                  codec: Codec = RAW) -> tuple[SplitState, list[str], list[int], list[str]]:
    paths, labels, names = list_split(root, split, custom_classes)
    n, raw = len(paths), codec.quality is None
    store = out / (f"{split}.u8" if raw else f"{split}.jpeg")
    plan = list(chunks_of(n, chunk_size))
    state_path = out / ".progress" / f"{split}.npz"
    if raw and (not store.exists() or store.stat().st_size != n * size * size * 3):  # new, or the count changed
        state_path.unlink(missing_ok=True)
        np.memmap(store, dtype=np.uint8, mode="w+", shape=(n, size, size, 3)).flush()
    if not raw:
        store.mkdir(exist_ok=True)
        for stale in store.iterdir():  # chunks of a larger earlier plan, and writes a kill cut short
            if stale.suffix == ".tmp" or int(stale.stem.split("-")[-1]) >= len(plan):
                stale.unlink()
    state = SplitState(state_path, n, len(plan), size)
    with_stats = split == "train"
    identities = {c: chunk_identity(root, paths[s:e], labels[s:e]) for c, s, e in plan}
    damaged = [] if raw else [c for c, s, e in plan if state.done[c] and not shard_intact(store, c, state, s, e)]
    changed = [(c, s, e) for c, s, e in plan if state.done[c] and state.identity[c] != identities[c]
               and c not in damaged]
    for c, s, e in changed:  # files replaced, renamed or relabelled since those chunks were made: redo them
        state.undo(c, s, e, chunk_rows(store, state, c, s, e, n, size, raw) if with_stats else None)
    for c, s, e in plan:  # a shard cut short or replaced: its pixels are gone, so the sums are redone from all rows
        if c in damaged:
            state.undo(c, s, e, None)
    if changed or damaged:
        state.save()
    todo = [(c, s, e) for c, s, e in plan if not state.done[c]]
    task = progress.add_task(split, total=n, completed=n - sum(e - s for _, s, e in todo)) if progress else None
    last_save = time.monotonic()
    pool = ProcessPoolExecutor(max_workers=max(1, workers), initializer=_exit_with_parent, initargs=(os.getpid(),))
    try:
        futures = {pool.submit(process_chunk, str(store), n, c, s, paths[s:e], with_stats, size, codec): (c, s)
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
    if damaged and with_stats:
        state.sums = Sums(size)
        for c, s, e in plan:
            for img in chunk_rows(store, state, c, s, e, n, size, raw):
                state.sums.add(img)
    state.save()
    return state, paths, labels, names


def shard_intact(folder: Path, chunk: int, state: SplitState, start: int, stop: int) -> bool:
    shard = shard_path(folder, chunk)
    return shard.is_file() and shard.stat().st_size == int(state.lengths[start:stop].sum())


def chunk_rows(store: Path, state: SplitState, chunk: int, start: int, stop: int, n: int, size: int,
               raw: bool) -> Iterator[np.ndarray]:
    """The decoded pixels of a finished chunk's valid rows, in order."""
    valid = np.flatnonzero(state.valid[start:stop])
    if raw:
        rows = np.memmap(store, dtype=np.uint8, mode="r", shape=(n, size, size, 3))
        for i in valid:
            yield np.asarray(rows[start + i])
        return
    data, lengths = shard_path(store, chunk).read_bytes(), state.lengths[start:stop]
    offsets = np.cumsum(lengths) - lengths
    for i in valid:
        yield jpeg.decode(data[offsets[i] : offsets[i] + lengths[i]]).numpy()


def write_index(out: Path, split: str, state: SplitState, plan: list[tuple[int, int, int]], root: Path,
                paths: list[str], raw: bool) -> None:
    """The split's ``<split>_files.txt`` (each row's source below root, for error messages) and, for a jpeg store,
    ``<split>_index.npy``: each row's (chunk, offset in its shard, length)."""
    (out / f"{split}_files.txt").write_text("".join(os.path.relpath(p, root) + "\n" for p in paths))
    if raw:
        return
    index = np.zeros((state.n, 3), dtype=np.int64)
    for c, s, e in plan:
        lengths = state.lengths[s:e]
        index[s:e, 0], index[s:e, 1], index[s:e, 2] = c, np.cumsum(lengths) - lengths, lengths
    np.save(out / f"{split}_index.npy", index)


def statistics(state: SplitState) -> dict[str, np.ndarray]:
    """Mean image and RGB covariance/eigen-decomposition, all float64 on the [0, 255] scale."""
    count = int(state.valid.sum())
    if count == 0:
        raise ValueError("no training image could be decoded: no statistics")
    sums = state.sums
    mean_rgb = sums.rgb / sums.pixels
    cov = sums.outer / sums.pixels - np.outer(mean_rgb, mean_rgb)
    eigval, eigvec = np.linalg.eigh(cov)
    order = np.argsort(eigval)[::-1]
    return {"mean_image": sums.image / count, "rgb_mean": mean_rgb, "rgb_cov": cov,
            "eigval": eigval[order], "eigvec": eigvec[:, order], "count": np.int64(count)}


def store_files(out: Path) -> list[Path]:
    """What a store in ``out`` consists of (either format)."""
    names = ["manifest.json", "stats.npz"]
    for split in ("train", "val"):
        names += [f"{split}.u8", f"{split}_labels.npy", f"{split}_index.npy", f"{split}_files.txt", f"{split}.jpeg"]
    return [out / name for name in names]


def recorded(out: Path) -> tuple[str | None, str]:
    """The source folder and format of a store (complete or not) in ``out``: (None, "") when there is none."""
    manifest = out / "manifest.json"
    if manifest.is_file():
        try:
            m = json.loads(manifest.read_text())
            return m.get("source"), m.get("params", {}).get("format", StoreFormat.raw.value)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return "an unreadable manifest.json", ""
    if (out / ".progress").is_dir() and any((out / ".progress").iterdir()):
        return "an unknown source (a store from an earlier version or without a manifest)", ""
    return None, ""


def check_out_dir(out: Path, root: Path, overwrite: bool, fmt: StoreFormat = StoreFormat.jpeg) -> bool:
    """Refuse to mix two sources or two formats in one store (the CLI calls this before any work). True: ``out``
    holds another store that ``overwrite`` will replace."""
    found, found_format = recorded(out)
    if found is None or (found == str(root) and found_format == fmt.value):
        return False
    if not overwrite:
        if found == str(root):
            raise StoreMismatch(f"out_dir={out} holds a format={found_format} store of root={root}, not "
                                f"format={fmt.value}: choose another out_dir, or add overwrite=true to rebuild it")
        raise StoreMismatch(f"out_dir={out} holds a store of {found}, not of root={root}: choose another out_dir, "
                            f"or add overwrite=true to rebuild it from {root}")
    return True


def claim(out: Path, root: Path, overwrite: bool, fmt: StoreFormat = StoreFormat.jpeg) -> None:
    """``check_out_dir``, then remove the other store's files when overwriting."""
    if not check_out_dir(out, root, overwrite, fmt):
        return
    for path in store_files(out):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    shutil.rmtree(out / ".progress", ignore_errors=True)


def prepare(root: str | os.PathLike, out_dir: str | os.PathLike, show_progress: bool = True, **settings: Any) -> dict:
    """Prepare every split; returns the manifest. ``settings``: PrepareConfig's keys (config/tools.py holds their
    defaults: ``prepare(raw, out, chunk_size=4)``). Raises BadImage listing every undecodable file unless
    skip_bad, StoreMismatch when ``out_dir`` holds a store of another source (unless ``overwrite``)."""
    c = build(PrepareConfig, {"root": str(root), "out_dir": str(out_dir), **settings}, "prepare")
    splits, chunk_size, skip_bad, custom_classes, size = c.splits, c.chunk_size, c.skip_bad, c.custom_classes, c.size
    workers, save_every, overwrite = c.workers or default_workers(), c.save_every, c.overwrite
    fmt = StoreFormat(c.format)
    codec = Codec(c.quality, c.chroma.value) if fmt == StoreFormat.jpeg else RAW
    root, out = Path(root).expanduser().resolve(), Path(out_dir).expanduser().resolve()
    if not root.is_dir():
        raise ConfigError(f"root={root}: no such folder (it must hold train/<wnid>/ and val/<wnid>/)")
    out.mkdir(parents=True, exist_ok=True)
    claim(out, root, overwrite, fmt)
    (out / ".progress").mkdir(exist_ok=True)
    manifest_path = out / "manifest.json"
    params = {"size": size, "resize": f"shorter side to {size}, central square (section 2: 256)", "decoder": "PIL",
              "exif_orientation": "ignored", "version": VERSION, "skip_bad": skip_bad, "custom_classes": custom_classes,
              "format": fmt.value}
    if fmt == StoreFormat.jpeg:
        params |= {"quality": c.quality, "chroma": c.chroma.value, "encoder": jpeg.encoder_name(),
                   "statistics": "of the decoded JPEGs: the pixels training reads"}
    manifest: dict = {"source": str(root), "params": params, "splits": {}, "skipped": [], "complete": False}
    manifest_path.write_text(json.dumps(manifest, indent=1))  # incomplete until the end: never read half-made
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), SpeedColumn(),
               TimeRemainingColumn()]
    bad: list[list[str]] = []
    with Progress(*columns, disable=not show_progress) as progress:
        for split in splits:
            state, paths, labels, names = prepare_split(root, out, split, workers, chunk_size, custom_classes,
                                                        progress, save_every, size, codec)
            write_index(out, split, state, list(chunks_of(len(paths), chunk_size)), root, paths, codec.quality is None)
            errors = state.all_errors()
            bad += errors
            label_arr = np.where(state.valid, np.asarray(labels, dtype=np.int64), -1)
            np.save(out / f"{split}_labels.npy", label_arr)
            counts = Counter(name for name, ok in zip(names, state.valid) if ok)
            data = out / (f"{split}.u8" if codec.quality is None else f"{split}.jpeg")
            stored = data.stat().st_size if data.is_file() else sum(f.stat().st_size for f in data.iterdir())
            manifest["splits"][split] = {"images": int(state.valid.sum()), "files": len(paths), "bytes": stored,
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
