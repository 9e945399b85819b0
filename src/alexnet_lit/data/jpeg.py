"""The JPEG store's codec: each 256x256 square encoded once by alexnet-prepare, decoded every time it is read.

    alexnet-prepare root=/data/imagenet out_dir=/data/imagenet-256                # format=jpeg quality=90 (default)
    alexnet-prepare root=/data/imagenet out_dir=/data/imagenet-256-raw format=raw  # uint8 rows, no decode

Encoding: Pillow's libjpeg-turbo, baseline with the standard Huffman tables (optimised tables measured 3% smaller at
half the encode rate, and need a larger encoder buffer than Pillow gives a 256 px image), chroma at full resolution
(4:4:4) unless ``chroma=half``; fixed pixels and settings give fixed bytes. Decoding: TorchCodec's ``decode_jpeg``
(libjpeg-turbo too; torchvision's, deprecated since torchvision 0.29, decodes the same pixels at about the same
rate), 1.4x Pillow's rate per core on 256 px squares (``make bench-data`` prints all three), to a CHW tensor whose
HWC view the crop reads; on a GPU (``data.augment_on=device``) one batched call to nvJPEG.

A JPEG changes pixels: the statistics of a JPEG store (mean image, RGB PCA) are computed from the decoded pixels
training sees, and ``psnr`` measures the change against the raw square (README "Which store").
"""

from __future__ import annotations

import io
import re

import numpy as np
import PIL
import torch
from PIL import Image, features
from torchcodec.decoders import decode_jpeg

from alexnet_lit.config import Chroma

PIL_CHROMA = {Chroma.full: "4:4:4", Chroma.half: "4:2:0"}


FIX = "the store is damaged: prepare it again into a new out_dir, or leave such samples out with data.skip_bad=true"


class BadSample(OSError):
    """A store sample that cannot be decoded (a damaged shard): the message names the split, row and file."""


def encoder_name() -> str:
    return f"Pillow {PIL.__version__}, libjpeg-turbo {features.version('libjpeg_turbo')}"


def encode(square: np.ndarray, quality: int, chroma: Chroma | str = Chroma.full) -> bytes:
    """(H, W, 3) uint8 -> JPEG bytes; the same pixels and settings give the same bytes."""
    out = io.BytesIO()
    Image.fromarray(square).save(out, "JPEG", quality=quality, subsampling=PIL_CHROMA[Chroma(chroma)])
    return out.getvalue()


def decode(data: torch.Tensor | bytes) -> torch.Tensor:
    """JPEG bytes (a 1-D uint8 tensor) -> (H, W, 3) uint8, an HWC view of the decoder's CHW tensor."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    return decode_jpeg(data, mode="RGB").permute(1, 2, 0)


def reason(e: Exception) -> str:
    """A decoder error on one line, without the C++ source location it starts with ("decode_rows, /path.cpp:287, ")."""
    return re.sub(r"^.*\.cpp:\d+, ", "", " ".join(str(e).split())) or type(e).__name__


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of uint8 images in dB (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


class Encoded:
    """One sample's JPEG bytes on their way to a device decode (``data.augment_on=device``): not a tensor, so
    Lightning leaves it on the host, where nvJPEG reads its input. ``shape`` is the decoded (H, W, 3) and ``name``
    says which sample it is in an error."""

    def __init__(self, data: torch.Tensor, side: int, name: str) -> None:
        self.data, self.shape, self.name = data, (side, side, 3), name


class EncodedBatch:
    """A batch of ``Encoded`` (collated by ``collate``); ``decode`` turns it into (B, H, W, 3) uint8 on a device."""

    def __init__(self, items: list[Encoded]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def decode(self, device: torch.device | str, skip_bad: bool = False) -> tuple[torch.Tensor, list[int]]:
        """The decoded batch and the positions kept (all, unless ``skip_bad`` left damaged samples out). One batched
        call (nvJPEG on CUDA); when it fails, each sample alone, to name the damaged ones."""
        data = [e.data for e in self.items]
        try:
            images = decode_jpeg(data, mode="RGB", device=device)
            keep = list(range(len(data)))
        except RuntimeError:
            images, keep, bad = [], [], []
            for i, d in enumerate(data):
                try:
                    images.append(decode_jpeg(d, mode="RGB", device=device))
                    keep.append(i)
                except RuntimeError as e:
                    bad.append(f"{self.items[i].name}: cannot decode ({reason(e)})")
            if not skip_bad:
                raise BadSample("; ".join(bad) + f"; {FIX}") from None
            import warnings

            for b in bad:
                warnings.warn(f"data.skip_bad=true: leaving out {b}", stacklevel=1)
        if not images:
            raise BadSample("no sample of the batch could be decoded")
        return torch.stack(images).permute(0, 2, 3, 1), keep


def collate(batch: list) -> object:
    """default_collate, with the ``Encoded`` samples of a batch gathered into one ``EncodedBatch``."""
    from torch.utils.data._utils.collate import collate as torch_collate
    from torch.utils.data._utils.collate import default_collate_fn_map

    return torch_collate(batch, collate_fn_map={**default_collate_fn_map,
                                                Encoded: lambda b, **_: EncodedBatch(list(b))})
