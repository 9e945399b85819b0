"""Data: the embedded generated set, the DataModule's crops and 10-crop view, CIFAR-10 JPEGs from ../shared."""

from __future__ import annotations

import hashlib
import json
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet_lit.cli.train import run
from alexnet_lit.data import AlexNetDataModule
from alexnet_lit.data.generated import SHAPES, ensure_generated
from conftest import SHARED, TINY, compose_train

SMALL = {"classes": 4, "train_per_class": 5, "val_per_class": 2, "image_size": 72}


def digest(root) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.JPEG")):
        h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def test_generated_data_is_real_jpegs_in_imagenet_layout(tmp_path):
    root = ensure_generated(tmp_path, seed=0, **SMALL)
    assert root.is_relative_to(tmp_path)
    for split, per_class in (("train", 5), ("val", 2)):
        folders = sorted(p.name for p in (root / split).iterdir())
        assert folders == [f"{i:02d}_{s}" for i, s in enumerate(SHAPES[:4])]
        for folder in folders:
            files = sorted((root / split / folder).glob("*.JPEG"))
            assert len(files) == per_class
            with Image.open(files[0]) as im:
                assert im.format == "JPEG" and im.size == (72, 72) and im.mode == "RGB"
    assert json.loads((root / "manifest.json").read_text())["counts"]["train/00_disk"] == 5


def test_generated_data_is_deterministic_from_its_seed(tmp_path):
    a = ensure_generated(tmp_path / "a", seed=0, **SMALL)
    b = ensure_generated(tmp_path / "b", seed=0, **SMALL)
    c = ensure_generated(tmp_path / "c", seed=1, **SMALL)
    assert digest(a) == digest(b) != digest(c)


def test_shapes_vary_in_position_and_scale(tmp_path):
    """The class is the shape: within one class, where the shape sits and how big it is must vary."""
    root = ensure_generated(tmp_path, seed=0, classes=2, train_per_class=20, val_per_class=1, image_size=72)
    centres, areas = [], []
    for p in sorted((root / "train" / "00_disk").glob("*.JPEG")):
        x = torch.from_numpy(np.asarray(Image.open(p), dtype="float32"))  # H, W, 3
        mask = (x - x[:1]).abs().amax(-1) > 50  # the background varies by column only: compare with the top row
        ys, xs = mask.nonzero(as_tuple=True)
        if len(xs):
            centres.append((xs.float().mean().item(), ys.float().mean().item()))
            areas.append(mask.sum().item())
    assert len(centres) >= 15
    assert torch.tensor(centres).std(0).min() > 3 and torch.tensor(areas).float().std() > 100


def test_bad_generated_class_count_names_the_key(tmp_path):
    with pytest.raises(ValueError, match="data.generated.classes=11"):
        ensure_generated(tmp_path, **{**SMALL, "classes": 11, "seed": 0})


def test_datamodule_batches_and_ten_crop_view(tmp_path):
    dm = AlexNetDataModule(source="generated", num_classes=4, resize_size=72, crop_size=64, batch_size=4,
                           num_workers=0, generated={**SMALL, "seed": 0}, cache_dir=str(tmp_path), pixel_max=1)
    dm.prepare_data()
    dm.setup("fit")
    x, y, z = next(iter(dm.train_dataloader()))
    assert x.dtype == torch.uint8 and x.shape == (4, 3, 64, 64)  # workers stay uint8
    assert z.shape == (4, 3) and z.dtype == torch.float32  # each sample's PCA-lighting draws (order.py)
    xf, _ = dm.on_after_batch_transfer((x, y, z), 0)
    assert xf.dtype == torch.float32 and abs(xf.mean().item()) < 2
    center, ten = dm.test_dataloader()
    xc, _ = next(iter(center))
    xt, yt = next(iter(ten))
    assert xc.shape == (4, 3, 64, 64) and xt.shape == (1, 10, 3, 64, 64)
    crops = xt[0]
    torch.testing.assert_close(crops[4], xc[0])  # the fifth crop is the centre crop
    # the other five are the mirrors of the first five (section 4.1); torchvision mirrors the image, then crops,
    # so the mirrored top-left patch comes from the top-right corner: compare as sets
    mirrored = {c.flip(-1).numpy().tobytes() for c in crops[:5]}
    assert {c.numpy().tobytes() for c in crops[5:]} == mirrored
    assert len({c.float().sum().item() for c in crops[:5]}) == 5


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    tarball = SHARED / "cifar10-jpg.tar.gz"
    if not tarball.is_file():
        pytest.skip(f"{tarball} not found: CIFAR-10 JPEGs come from ../shared/data (absent outside this workplace)")
    root = tmp_path_factory.mktemp("cifar10")
    subprocess.run(["tar", "-xzf", str(tarball), "-C", str(root), "--wildcards", "train/*/00*.jpg", "test/*/00*.jpg"],
                   check=True)
    return root


def test_cifar10_jpegs_train_a_few_steps(cifar_root, tmp_path, cache_dir):
    over = [*TINY, "data=cifar10", f"data.root={cifar_root}", "trainer.limit_train_batches=3",
            "trainer.limit_val_batches=2", "trainer.limit_test_batches=2"]  # the pipeline, not its 3,000 evaluations
    cfg = compose_train(over, tmp_path, cache_dir)
    metrics = run(cfg)
    assert {"val/top1_err", "test/top1_err_10crop"} <= set(metrics)
    dm = AlexNetDataModule(source="cifar10", root=str(cifar_root), num_classes=10, resize_size=72, crop_size=64,
                           num_workers=0, batch_size=8)
    dm.setup("fit")
    assert dm.datasets["train"].classes[:2] == ["airplane", "automobile"] and len(dm.datasets["val"]) == 1000
