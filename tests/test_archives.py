"""The official ILSVRC-2012 archives, unpacked by torchvision's own parsing; labels from the devkit's meta.mat.

The archives here are built in the test with the real layout (a tar of per-class tars, a flat val tar, a devkit
with data/meta.mat and data/ILSVRC2012_validation_ground_truth.txt). Their MD5 sums cannot match the real ones,
so torchvision's MD5 check is the one thing replaced.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alexnet_lit.data import sources
from alexnet_lit.data.classes import wnids

scipy_io = pytest.importorskip("scipy.io")

# ILSVRC2012_ID order (the devkit's) deliberately differs from sorted-wnid order (ours)
DEVKIT = [(1, 900), (2, 3), (3, 500)]  # (ILSVRC2012_ID, canonical index of its wnid)
VAL_TRUTH = [2, 3, 1, 2]  # ground-truth ILSVRC2012_ID of val images 1..4


def jpeg_bytes(value: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (value, value, value)).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def build_archives(root: Path) -> None:
    synsets = np.zeros((len(DEVKIT),), dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"),
                                              ("gloss", "O"), ("num_children", "O")])
    for row, (ilsvrc_id, idx) in enumerate(DEVKIT):
        synsets[row] = (ilsvrc_id, wnids()[idx], f"class {idx}", "", 0)
    data = root / "devkit" / "ILSVRC2012_devkit_t12" / "data"
    data.mkdir(parents=True)
    scipy_io.savemat(data / "meta.mat", {"synsets": synsets})
    (data / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{i}\n" for i in VAL_TRUTH))
    with tarfile.open(root / "ILSVRC2012_devkit_t12.tar.gz", "w:gz") as tar:
        tar.add(root / "devkit" / "ILSVRC2012_devkit_t12", arcname="ILSVRC2012_devkit_t12")
    with tarfile.open(root / "ILSVRC2012_img_train.tar", "w") as outer:
        for _, idx in DEVKIT:
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w") as t:
                for k in range(2):
                    add(t, f"{wnids()[idx]}_{k}.JPEG", jpeg_bytes(idx % 256))
            add(outer, f"{wnids()[idx]}.tar", inner.getvalue())
    with tarfile.open(root / "ILSVRC2012_img_val.tar", "w") as tar:
        for n, truth in enumerate(VAL_TRUTH, start=1):
            idx = dict(DEVKIT)[truth]
            add(tar, f"ILSVRC2012_val_{n:08d}.JPEG", jpeg_bytes(idx % 256))


def test_archives_unpack_with_devkit_labels_in_canonical_order(tmp_path, monkeypatch):
    from torchvision.datasets import imagenet

    monkeypatch.setattr(imagenet, "_verify_archive", lambda root, file, md5: None)
    build_archives(tmp_path)
    ds = sources.build("archives", str(tmp_path), 1000, {"train": None, "val": None}, "", {})
    assert sorted(set(ds["train"].targets)) == [3, 500, 900]
    val = ds["val"]
    for path, label in val.samples:
        grey = np.asarray(Image.open(path))[0, 0, 0]
        assert abs(int(grey) - label % 256) <= 2, (path, label)  # each val image is labelled by meta.mat
    assert sorted(val.targets) == sorted(dict(DEVKIT)[t] for t in VAL_TRUTH)
