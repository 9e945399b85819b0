"""Embedded data: a small image-classification set the project draws itself, so a fresh machine can train.

    python train.py +experiment=quickstart       # generates it on first use, then trains on it

Real JPEG files in the ImageNet folder layout (``train/<class>/*.JPEG``, ``val/<class>/*.JPEG``), deterministic
from a seed, cached outside the repository (``data.cache_dir``: $ALEXNET_LIT_CACHE, else ``~/.cache/alexnet-lit``).
Each class is a shape drawn at a random position, scale, rotation and colour on a noisy, coloured background, so
the class depends on the shape, never on position or scale alone.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SHAPES = ("disk", "ring", "square", "frame", "triangle", "plus", "ex", "star", "crescent", "bars")
VERSION = 1  # bump when the drawing changes, so old caches are not reused


def _polygon(cx: float, cy: float, r: float, sides: int, rot: float) -> list[tuple[float, float]]:
    return [(cx + r * math.cos(rot + 2 * math.pi * i / sides), cy + r * math.sin(rot + 2 * math.pi * i / sides))
            for i in range(sides)]


def _star(cx: float, cy: float, r: float, rot: float) -> list[tuple[float, float]]:
    pts = []
    for i in range(10):
        rr = r if i % 2 == 0 else r * 0.42
        a = rot + math.pi * i / 5
        pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
    return pts


def _bar(cx: float, cy: float, half_len: float, half_w: float, angle: float) -> list[tuple[float, float]]:
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + dx * c - dy * s, cy + dx * s + dy * c)
            for dx, dy in ((-half_len, -half_w), (half_len, -half_w), (half_len, half_w), (-half_len, half_w))]


def draw(shape: str, size: int, rng: np.random.Generator) -> Image.Image:
    """One image of ``shape``: random background, position, scale (0.25-0.45 of the side), rotation, colour."""
    bg = rng.integers(0, 256, 3)
    fg = (bg + rng.integers(80, 176, 3)) % 256  # far enough from the background in every channel
    grad = np.linspace(0, 1, size)[None, :, None] * rng.integers(-60, 60, 3)
    noise = rng.normal(0, 12, (size, size, 3))
    base = np.clip(bg + grad + noise, 0, 255).astype(np.uint8)
    img = Image.fromarray(base)
    d = ImageDraw.Draw(img)
    r = size * rng.uniform(0.25, 0.45)
    cx, cy = rng.uniform(r, size - r, 2)
    rot = rng.uniform(0, 2 * math.pi)
    col = tuple(int(c) for c in fg)
    w = max(2.0, r * 0.28)
    if shape == "disk":
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=col)
    elif shape == "ring":
        d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=col, width=int(w))
    elif shape == "square":
        d.polygon(_polygon(cx, cy, r, 4, rot), fill=col)
    elif shape == "frame":
        d.polygon(_polygon(cx, cy, r, 4, rot), outline=col, width=int(w))
    elif shape == "triangle":
        d.polygon(_polygon(cx, cy, r, 3, rot), fill=col)
    elif shape in ("plus", "ex"):
        # a plus turned by 45 degrees is an ex: keep each within +-17 degrees of its own orientation
        tilt = (rot / (2 * math.pi) - 0.5) * 0.6 + (0.0 if shape == "plus" else math.pi / 4)
        for a in (tilt, tilt + math.pi / 2):
            d.polygon(_bar(cx, cy, r, w / 2, a), fill=col)
    elif shape == "star":
        d.polygon(_star(cx, cy, r, rot), fill=col)
    elif shape == "crescent":
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=col)
        ox, oy = cx + 0.45 * r * math.cos(rot), cy + 0.45 * r * math.sin(rot)
        d.ellipse((ox - 0.8 * r, oy - 0.8 * r, ox + 0.8 * r, oy + 0.8 * r), fill=tuple(int(c) for c in bg))
    elif shape == "bars":
        for off in (-0.5, 0.5):
            ox, oy = cx + off * r * math.cos(rot + math.pi / 2), cy + off * r * math.sin(rot + math.pi / 2)
            d.polygon(_bar(ox, oy, r, w / 2, rot), fill=col)
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    return img.filter(ImageFilter.GaussianBlur(0.6))


def dataset_dir(cache_dir: str | os.PathLike, classes: int, train_per_class: int, val_per_class: int,
                image_size: int, seed: int) -> Path:
    params = {"classes": classes, "train": train_per_class, "val": val_per_class, "size": image_size, "seed": seed,
              "version": VERSION}
    key = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
    return Path(os.path.expanduser(cache_dir)) / "generated" / f"shapes{classes}-{image_size}px-s{seed}-{key}"


def ensure_generated(cache_dir: str | os.PathLike, classes: int, train_per_class: int, val_per_class: int,
                     image_size: int, seed: int) -> Path:
    """Write the data set of ``data.generated`` (GeneratedConfig in config/data.py has the defaults) once, atomically
(a half-written one is never used), and return its root."""
    if not 2 <= classes <= len(SHAPES):
        raise ValueError(f"data.generated.classes={classes}: must be between 2 and {len(SHAPES)} ({', '.join(SHAPES)})")
    root = dataset_dir(cache_dir, classes, train_per_class, val_per_class, image_size, seed)
    if (root / "manifest.json").exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=root.name + ".tmp-", dir=root.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700: a cache shared by a group must be readable by it
    counts = {}
    for split_idx, (split, per_class) in enumerate((("train", train_per_class), ("val", val_per_class))):
        for c, shape in enumerate(SHAPES[:classes]):
            out = tmp / split / f"{c:02d}_{shape}"
            out.mkdir(parents=True)
            rng = np.random.default_rng([seed, split_idx, c])
            for i in range(per_class):
                draw(shape, image_size, rng).save(out / f"{shape}_{i:05d}.JPEG", quality=90)
            counts[f"{split}/{out.name}"] = per_class
    manifest = {"source": "alexnet_lit.data.generated", "version": VERSION, "seed": seed, "image_size": image_size,
                "counts": counts}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    try:
        tmp.rename(root)
    except OSError:  # another process finished first; theirs is identical
        shutil.rmtree(tmp, ignore_errors=True)
    return root
