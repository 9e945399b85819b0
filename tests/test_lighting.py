"""PCA lighting and mean subtraction (paper section 4.1), and the paper recipe on a prepared store."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alexnet_lit.cli.train import run
from alexnet_lit.data.lighting import Normalizer, lighting_shift
from conftest import TINY, compose_train
from test_prepare import noisy_set

EIGVAL = torch.tensor([12000.0, 1000.0, 250.0], dtype=torch.float64)  # [0, 255]-scale covariance eigenvalues
EIGVEC = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))[0]


@pytest.mark.parametrize("magnitude, power", [("eigenvalue", 1.0), ("sqrt_eigenvalue", 0.5)])
def test_shift_is_alpha_times_eigenvalue_along_each_component(magnitude, power):
    g = torch.Generator().manual_seed(0)
    shifts = lighting_shift(200_000, EIGVAL, EIGVEC, std=0.1, magnitude=magnitude, generator=g)
    coords = shifts @ EIGVEC  # back to the principal axes: alpha_i * lam_i
    lam = (EIGVAL / 255.0**2) ** power
    torch.testing.assert_close(coords.std(0), 0.1 * lam, rtol=0.01, atol=0)
    assert coords.mean(0).abs().max() < 0.01 * lam.max()


def stats():
    mean_image = np.linspace(0, 255, 256 * 256 * 3).reshape(256, 256, 3)
    return {"mean_image": mean_image, "eigval": EIGVAL.numpy(), "eigvec": EIGVEC.numpy()}


def test_normalizer_lights_training_batches_only_and_subtracts_the_mean_image():
    norm = Normalizer("mean_image", [0, 0, 0], [1, 1, 1], stats(), lighting=True)
    x = torch.randint(0, 256, (4, 3, 224, 224), dtype=torch.uint8)
    evaluated = norm(x, train=False)
    centre = torch.as_tensor(stats()["mean_image"], dtype=torch.float32).permute(2, 0, 1)[:, 16:240, 16:240] / 255
    torch.testing.assert_close(evaluated, x.float() / 255 - centre)
    trained = norm(x, train=True)
    delta = trained - evaluated  # one RGB shift per image, the same at every pixel
    torch.testing.assert_close(delta, delta[:, :, :1, :1].expand_as(delta), rtol=0, atol=1e-5)
    assert delta[:, :, 0, 0].std(0).min() > 0  # and different between images


def test_lighting_needs_statistics():
    with pytest.raises(ValueError, match="data.stats_path"):
        Normalizer("channel", [0, 0, 0], [1, 1, 1], None, lighting=True)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from alexnet_lit.data.prepare import prepare

    root = tmp_path_factory.mktemp("store")
    noisy_set(root / "raw", per_class=6, size=(300, 260), classes=(7, 300, 999))
    prepare(root / "raw", root / "out", show_progress=False)
    return root


@pytest.mark.parametrize("experiment", ["paper", "no_pca"])
def test_paper_recipe_trains_on_the_prepared_store(experiment, store, tmp_path, cache_dir):
    over = [o for o in TINY if not o.startswith("data.generated") and o != "data=generated"]
    cfg = compose_train([f"experiment={experiment}", *over, f"data.root={store / 'out'}", "data.batch_size=4",
                         "trainer.limit_train_batches=2"], tmp_path, cache_dir)
    assert cfg.data.normalize.value == "mean_image"
    assert cfg.data.lighting.enabled is (experiment == "paper")
    metrics = run(cfg)
    assert metrics["val/images"] == 6 and metrics["test/images_10crop"] == 6


def test_raw_folder_uses_canonical_labels(store, tmp_path, cache_dir):
    over = [o for o in TINY if not o.startswith("data.generated") and o != "data=generated"]
    cfg = compose_train(["data=imagenet", *over, f"data.root={store / 'raw'}", "data.batch_size=4",
                         "data.resize_size=72", "data.crop_size=64", "trainer.limit_train_batches=2"],
                        tmp_path, cache_dir)
    from alexnet_lit.config import plain
    from alexnet_lit.data import AlexNetDataModule

    dm = AlexNetDataModule(**plain(cfg.data))
    dm.setup("fit")
    assert sorted(set(dm.datasets["train"].targets)) == [7, 300, 999]  # ILSVRC indices, not 0, 1, 2
    assert run(cfg)["val/images"] == 6


def test_store_crops_stay_hwc_and_match_the_row():
    from alexnet_lit.data.augment import StoreCrop

    row = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    torch.manual_seed(0)
    flips = 0
    for _ in range(20):
        patch = StoreCrop(224, "random", flip=True)(row).numpy()
        assert patch.shape == (224, 224, 3)
        found = [(t, s) for t in range(33) for s in range(33) if np.array_equal(row[t : t + 224, s : s + 224], patch)]
        if not found:
            mirrored = patch[:, ::-1]
            assert any(np.array_equal(row[t : t + 224, s : s + 224], mirrored) for t in range(33) for s in range(33))
            flips += 1
    assert 3 <= flips <= 17
    centre = StoreCrop(224, "centre")(row).numpy()
    assert np.array_equal(centre, row[16:240, 16:240])
    ten = StoreCrop(224, "ten")(row).numpy()
    assert ten.shape == (10, 224, 224, 3) and np.array_equal(ten[4], centre)
    assert {c.tobytes() for c in ten[5:]} == {np.ascontiguousarray(c[:, ::-1]).tobytes() for c in ten[:5]}


def test_bench_data_prints_its_ratios(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from conftest import ROOT, SHARED

    if not (SHARED / "imagenet-sample").is_dir():
        pytest.skip("../shared/data/imagenet-sample not found (absent outside this workplace)")
    sample = tmp_path / "sample"
    sample.mkdir()
    for f in sorted((SHARED / "imagenet-sample").glob("*.JPEG"))[:8]:
        (sample / f.name).symlink_to(f)
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "bench_data.py"), "--images", str(sample),
                           "--seconds", "0.2"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1].startswith("speedup_vs_reference=") and float(lines[-1].split("=")[1]) > 0
    assert Path(ROOT / "Makefile").read_text().count("bench-data") >= 2
