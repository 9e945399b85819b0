"""make bench-data, second part: the two store formats (alexnet-prepare format=jpeg|raw) on the same real images.

    python experiments/bench_store.py [--images ../shared/data/imagenet-sample] [--seconds 5] [--disk-gb 2]
    python experiments/bench_store.py --disk-gb 24     # a store larger than this machine's free memory

1. Both stores of the sample (256 px squares): bytes per image, and prepare's rate (decode + resize [+ encode]).
2. JPEG at qualities 75-95, chroma full (4:4:4) and half (4:2:0): bytes per image and PSNR against the raw square
   (mean and minimum over the sample); the decoders on those bytes: TorchCodec (the store's), torchvision's
   (deprecated), Pillow, per core.
3. The loader per core (one process, one torch thread, batches of 128): random 224 crop + flip from each store,
   so for JPEG: read + decode + crop + flip. With a GPU: the batched nvJPEG decode (data.augment_on=device).
4. From disk: a store of ``--disk-gb`` GB (raw; the JPEG store holds the same number of images) made by repeating the
   sample's rows, evicted from the page cache with posix_fadvise(DONTNEED), then read in the training order (a
   random permutation) for ``--seconds``. How we know it came from disk: the share of its pages resident before
   (mincore, sampled) and the bytes the kernel read from storage for this process (/proc/self/io read_bytes).
   A virtual disk may itself be cached by its host: the figure is then that of this machine's disk as it is.
Last line: jpeg_vs_raw_bytes=N.N (raw bytes / jpeg bytes per image).
"""

from __future__ import annotations

import argparse
import ctypes
import io
import json
import mmap
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from bench_data import timed
from PIL import Image
from torch.utils.data import DataLoader

from alexnet_lit.data import jpeg
from alexnet_lit.data.augment import train_transform
from alexnet_lit.data.chunks import shard_path
from alexnet_lit.data.classes import link_flat_sample
from alexnet_lit.data.prepare import prepare
from alexnet_lit.data.store import PreparedSplit
from alexnet_lit.machine import cpu_name

QUALITIES = (75, 85, 90, 95)


def codec_table(squares: list[np.ndarray]) -> list[dict]:
    rows = []
    for chroma in ("full", "half"):
        for q in QUALITIES:
            blobs = [jpeg.encode(s, q, chroma) for s in squares]
            p = [jpeg.psnr(s, jpeg.decode(b).numpy()) for s, b in zip(squares, blobs)]
            rows.append({"quality": q, "chroma": chroma, "bytes": float(np.mean([len(b) for b in blobs])),
                         "psnr_mean": float(np.mean(p)), "psnr_min": float(np.min(p))})
    return rows


def decoder_rates(squares: list[np.ndarray], seconds: float) -> dict[str, float]:
    from torchvision.io import ImageReadMode
    from torchvision.io import decode_jpeg as tv_decode

    blobs = [jpeg.encode(s, 90) for s in squares]
    tensors = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # torchvision's decoders say they are deprecated

    def each(fn, items):
        def run() -> int:
            for x in items:
                fn(x)
            return len(items)
        return run

    return {"torchcodec": timed(each(jpeg.decode, tensors), seconds),
            "torchvision": timed(each(lambda t: tv_decode(t, mode=ImageReadMode.RGB), tensors), seconds),
            "pillow": timed(each(lambda b: np.asarray(Image.open(io.BytesIO(b)).convert("RGB")), blobs), seconds)}


def loader_rate(store: Path, seconds: float, limit: float | None = None) -> float:
    """Random crop + flip batches of 128 from ``store``'s train split, one process; ``limit``: stop after that many
    seconds even in the warm-up (a cold store's first pass is the measurement)."""
    ds = PreparedSplit(store, "train", train_transform(256, 224, flip=True, prepared=True))
    loader = DataLoader(ds, batch_size=128, shuffle=True, num_workers=0)
    if limit is None:
        return timed(lambda: sum(len(x) for x, _ in loader), seconds)
    n, start = 0, time.perf_counter()
    for x, _ in loader:
        n += len(x)
        if time.perf_counter() - start >= limit:
            break
    return n / (time.perf_counter() - start)


# --- from disk ------------------------------------------------------------------------------------------------
def tiled(small: Path, big: Path, images: int) -> None:
    """A valid store of ``images`` training rows: the small store's rows repeated (both formats)."""
    big.mkdir(parents=True)
    manifest = json.loads((small / "manifest.json").read_text())
    labels = np.load(small / "train_labels.npy")
    reps = -(-images // len(labels))
    np.save(big / "train_labels.npy", np.tile(labels, reps)[:images])
    shutil.copy(small / "stats.npz", big / "stats.npz")
    manifest["splits"]["train"]["images"] = images
    (big / "manifest.json").write_text(json.dumps(manifest))
    if manifest["params"].get("format") == "jpeg":
        index = np.load(small / "train_index.npy")
        data = b"".join((small / "train.jpeg" / f"chunk-{c:06d}.bin").read_bytes() for c in sorted(set(index[:, 0])))
        lengths = index[:, 2]
        (big / "train.jpeg").mkdir()
        out, chunk = [], 0
        for start in range(0, images, len(labels)):  # one shard per repetition of the sample
            n = min(len(labels), images - start)
            shard_path(big / "train.jpeg", chunk).write_bytes(data[: int(lengths[:n].sum())])
            out.append(np.stack([np.full(n, chunk), np.cumsum(lengths[:n]) - lengths[:n], lengths[:n]], 1))
            chunk += 1
        np.save(big / "train_index.npy", np.concatenate(out))
        return
    row = (small / "train.u8").read_bytes()
    with open(big / "train.u8", "wb") as f:
        for start in range(0, images, len(labels)):
            n = min(len(labels), images - start)
            f.write(row[: n * 256 * 256 * 3])


def files_of(store: Path) -> list[Path]:
    return sorted(p for p in store.rglob("*") if p.is_file() and p.suffix in (".u8", ".bin"))


def evict(store: Path) -> None:
    for p in files_of(store):
        fd = os.open(p, os.O_RDONLY)
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)


def resident(store: Path, samples: int = 64) -> float:
    """The share of the store's pages in the page cache (mincore on up to ``samples`` files, 64 MiB of each)."""
    libc = ctypes.CDLL(None, use_errno=True)
    files = files_of(store)
    files = files[:: max(1, len(files) // samples)]
    total = hit = 0
    for p in files:
        size = min(p.stat().st_size, 64 << 20)
        if not size:
            continue
        with open(p, "rb") as f, mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ) as m:
            pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
            vec = (ctypes.c_ubyte * pages)()
            base = np.frombuffer(m, dtype=np.uint8)
            libc.mincore(ctypes.c_void_p(base.ctypes.data), ctypes.c_size_t(size), vec)
            hit += sum(v & 1 for v in vec)
            total += pages
            del base
    return hit / max(1, total)


def read_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("read_bytes:"):
            return int(line.split()[1])
    return -1


def from_disk(small: dict[str, Path], tmp: Path, gb: float, seconds: float) -> dict[str, dict]:
    images = int(gb * 2**30 // (256 * 256 * 3))
    out = {}
    for fmt, store in small.items():
        big = tmp / f"disk-{fmt}"
        tiled(store, big, images)
        size = sum(p.stat().st_size for p in files_of(big))
        evict(big)
        before, io0 = resident(big), read_bytes()
        rate = loader_rate(big, seconds, limit=seconds)
        read = read_bytes() - io0
        out[fmt] = {"images": images, "gb": size / 2**30, "resident_before": before, "img_s": rate,
                    "read_mb_s": read / 2**20 / seconds, "read_bytes": read}
        shutil.rmtree(big)
    return out


def main() -> None:
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imagenet-sample"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=Path, default=default)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--disk-gb", type=float, default=2.0, help="the raw from-disk store's size (0: skip)")
    ap.add_argument("--tmp", type=Path, default=None, help="where the stores go (default: the system's temp)")
    args = ap.parse_args()
    if not args.images.is_dir():
        raise SystemExit(f"{args.images} not found: pass --images DIR with <wnid>_<name>.JPEG files")
    torch.set_num_threads(1)
    free_gb = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        raw = Path(tmp) / "raw"
        n = link_flat_sample(args.images, raw)
        stores, manifest, prepare_rate = {}, {}, {}
        for fmt in ("jpeg", "raw"):
            start = time.perf_counter()
            stores[fmt] = Path(tmp) / f"store-{fmt}"
            manifest[fmt] = prepare(raw, stores[fmt], workers=1, chunk_size=64, show_progress=False, format=fmt)
            prepare_rate[fmt] = 2 * n / (time.perf_counter() - start)
        per_image = {f: sum(s["bytes"] for s in m["splits"].values()) / (2 * n) for f, m in manifest.items()}
        squares = [np.asarray(PreparedSplit(stores["raw"], "train").image(i)) for i in range(n)]
        table = codec_table(squares)
        decoders = decoder_rates(squares, args.seconds)
        loaders = {f: loader_rate(s, args.seconds) for f, s in stores.items()}
        disk = from_disk(stores, Path(tmp), args.disk_gb, args.seconds) if args.disk_gb > 0 else {}
        nvjpeg = None
        if torch.cuda.is_available():
            ds = PreparedSplit(stores["jpeg"], "train")
            batch = jpeg.EncodedBatch([jpeg.Encoded(ds.encoded_bytes(i), 256, "") for i in range(len(ds))])

            def gpu_pass() -> int:
                batch.decode("cuda")
                torch.cuda.synchronize()
                return len(batch)
            nvjpeg = timed(gpu_pass, args.seconds)
    print(f"images: {n} real ILSVRC-2012 JPEGs from {args.images}; cpu: {cpu_name()}; 1 process, 1 torch thread; "
          f"free memory {free_gb:.1f} GiB")
    for fmt in ("raw", "jpeg"):
        q = f" (quality {manifest[fmt]['params']['quality']}, chroma {manifest[fmt]['params']['chroma']})" \
            if fmt == "jpeg" else ""
        print(f"store {fmt}{q}: {per_image[fmt] / 1024:6.1f} KiB/image; loader (read{' + decode' if q else ''} + "
              f"crop + flip): {loaders[fmt]:6.0f} img/s/core; prepare {prepare_rate[fmt]:5.0f} img/s/core")
    print("quality chroma  KiB/image  x smaller than raw  PSNR mean  PSNR min (dB, against the raw square)")
    for r in table:
        print(f"{r['quality']:7d} {r['chroma']:6s} {r['bytes'] / 1024:10.1f} {256 * 256 * 3 / r['bytes']:19.1f} "
              f"{r['psnr_mean']:10.1f} {r['psnr_min']:9.1f}")
    print("decoders (quality 90, 256 px): " + ", ".join(f"{k} {v:.0f} img/s/core" for k, v in decoders.items()))
    if nvjpeg is not None:
        print(f"nvJPEG batched decode on {torch.cuda.get_device_name()}: {nvjpeg:.0f} img/s")
    for fmt, d in disk.items():
        print(f"from disk, {fmt}: {d['gb']:.2f} GiB store of {d['images']} images, {100 * d['resident_before']:.1f}% "
              f"of its pages cached before (evicted), {d['read_mb_s']:.0f} MB/s read from storage: "
              f"{d['img_s']:.0f} img/s/core")
    if disk:
        print(f"disk_jpeg_vs_raw={disk['jpeg']['img_s'] / disk['raw']['img_s']:.1f}")
    print(f"loader_jpeg_vs_raw={loaders['jpeg'] / loaders['raw']:.2f}")
    print(f"jpeg_vs_raw_bytes={per_image['raw'] / per_image['jpeg']:.1f}")


if __name__ == "__main__":
    main()
