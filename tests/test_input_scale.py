"""The paper's input scale on real ImageNet images: raw 8-bit values minus the mean reach conv1, and LRN is a real
normalization there, not the constant division by k^beta it becomes on [0, 1] pixels (README, data.pixel_max)."""

from __future__ import annotations

import pytest
import torch

from alexnet_lit.config import plain
from alexnet_lit.data import AlexNetDataModule
from alexnet_lit.data.classes import link_flat_sample
from alexnet_lit.data.prepare import prepare
from alexnet_lit.module import AlexNetModule
from conftest import SHARED, compose_train


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory):
    images = SHARED / "imagenet-sample"
    if not images.is_dir():
        pytest.skip(f"{images} not found: the real ILSVRC sample comes from ../shared/data (absent outside this "
                    f"workplace)")
    root = tmp_path_factory.mktemp("sample")
    link_flat_sample(images, root / "raw")
    prepare(root / "raw", root / "store", workers=2, show_progress=False)
    return root / "store"


def first_training_batch(store, tmp_path, overrides: list[str]):
    """conv1's input on a real training batch of the composed recipe, and the model at its init."""
    # conv1 at a quarter width: the LRN term is a per-kernel statistic of conv1's fan-in (363), not of its width
    cfg = compose_train(["+experiment=paper", f"data.root={store}", "data.batch_size=32", "data.num_workers=0",
                         "model.width=0.25", "model.fc_units=64", *overrides], tmp_path, tmp_path)
    container = plain(cfg)
    torch.manual_seed(0)
    dm = AlexNetDataModule(**container["data"])
    dm.setup("fit")
    x, _, z = next(iter(dm.train_dataloader()))
    return dm.normalizer(x.movedim(-1, -3), train=True, lighting_z=z), AlexNetModule(**container["model"])


def lrn1_term(model: AlexNetModule, x: torch.Tensor) -> torch.Tensor:
    """alpha * sum a^2 at lrn1 (its denominator less k) over a batch, at init."""
    f = model.net.features
    with torch.no_grad():
        a = f.act1(f.conv1(x))
    return f.lrn1.denominator(a) - f.lrn1.k


def test_paper_recipe_feeds_raw_pixels_minus_the_mean(sample_store, tmp_path):
    x, _ = first_training_batch(sample_store, tmp_path, [])
    assert 100 < x.abs().max() < 300  # 8-bit values minus the mean image, plus a lighting shift of a few levels
    assert 30 < x.std() < 120
    x1, _ = first_training_batch(sample_store, tmp_path, ["data.pixel_max=1"])
    torch.testing.assert_close(x1 * 255, x, rtol=1e-4, atol=1e-2)  # the same input, scaled


def test_lrn_is_not_a_constant_at_the_papers_scale(sample_store, tmp_path):
    """Measured on this sample at the paper's init: the term's 99th percentile is ~0.3 (on k=2) at pixel_max 255
    and ~5e-6 at pixel_max 1, where LRN divides every activation by 2^0.75 alike."""
    x, model = first_training_batch(sample_store, tmp_path, [])
    term = lrn1_term(model, x).flatten()[::7]
    assert term.quantile(0.99) > 0.05 and term.std() > 0.01
    x1, model1 = first_training_batch(sample_store, tmp_path, ["data.pixel_max=1"])
    term1 = lrn1_term(model1, x1).flatten()[::7]
    assert term1.quantile(0.99) < 1e-4  # the degenerate case this test exists to catch
