"""PCA lighting and mean subtraction (paper section 4.1), and the paper recipe on a prepared store."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from alexnet_lit.cli.train import run
from alexnet_lit.config import LightingConfig
from alexnet_lit.data.lighting import Normalizer, lighting_shift
from conftest import TINY, compose_train, run_in_process
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


LIGHT = LightingConfig(enabled=True)


@pytest.mark.parametrize("pixel_max", [1.0, 255.0])
def test_normalizer_lights_training_batches_only_and_subtracts_the_mean_image(pixel_max):
    norm = Normalizer("mean_image", pixel_max, [0, 0, 0], [1, 1, 1], LIGHT, stats())
    x = torch.randint(0, 256, (4, 3, 224, 224), dtype=torch.uint8)
    evaluated = norm(x, train=False)
    centre = torch.as_tensor(stats()["mean_image"], dtype=torch.float32).permute(2, 0, 1)[:, 16:240, 16:240]
    torch.testing.assert_close(evaluated, (x.float() - centre) * (pixel_max / 255))  # raw values minus the mean
    torch.manual_seed(0)
    trained = norm(x, train=True)
    delta = trained - evaluated  # one RGB shift per image, the same at every pixel
    torch.testing.assert_close(delta, delta[:, :, :1, :1].expand_as(delta), rtol=0, atol=1e-3 * pixel_max)
    assert delta[:, :, 0, 0].std(0).min() > 0  # and different between images
    torch.manual_seed(0)  # the shift is defined on [0, 1] pixels and scales with them
    expected = lighting_shift(4, norm.eigval, norm.eigvec, LIGHT.std, LIGHT.magnitude) * pixel_max
    torch.testing.assert_close(delta[:, :, 0, 0], expected, rtol=1e-3, atol=1e-3 * pixel_max)


@pytest.mark.parametrize("pixel_max", [1.0, 255.0])
def test_channel_normalization_scales_with_pixel_max(pixel_max):
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    norm = Normalizer("channel", pixel_max, mean, std, LightingConfig())
    x = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    torchvision_style = (x.float() / 255 - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    torch.testing.assert_close(norm(x, train=True), torchvision_style * pixel_max, rtol=1e-5, atol=1e-5 * pixel_max)


@pytest.fixture(scope="module", params=["jpeg", "raw"])
def store(request, tmp_path_factory):
    """A store in each format: every test of the paper recipe on a store runs on both."""
    from alexnet_lit.data.prepare import prepare

    root = tmp_path_factory.mktemp(f"store-{request.param}")
    noisy_set(root / "raw", per_class=6, size=(300, 260), classes=(7, 300, 999))
    prepare(root / "raw", root / "out", show_progress=False, format=request.param)
    return root


def default_format_only(store) -> None:
    """Tests whose subject is not how a row is stored run on the default store (jpeg) alone."""
    if "jpeg" not in store.name:
        pytest.skip("runs on the default store format (jpeg); the raw store is read by the recipe tests above")


@pytest.mark.parametrize("experiment", ["paper", "no_pca"])
def test_paper_recipe_trains_on_the_prepared_store(experiment, store, tmp_path, cache_dir):
    if experiment == "no_pca":
        default_format_only(store)
    cfg = compose_train([f"+experiment={experiment}", *TINY, "data=imagenet_prepared", f"data.root={store / 'out'}",
                         "data.batch_size=4",
                         "trainer.limit_train_batches=2"], tmp_path, cache_dir)
    assert cfg.data.normalize.value == "mean_image"
    assert cfg.data.lighting.enabled is (experiment == "paper")
    metrics = run(cfg)
    assert metrics["val/images"] == 6 and metrics["test/images_10crop"] == 6


def test_the_store_ships_whole_rows_for_the_10_crop_view_and_the_device_cuts_them(store, tmp_path, cache_dir):
    """7.7x fewer bytes through the loader: the 256x256 uint8 row, cut into the 10 crops in on_after_batch_transfer
    (on the GPU when there is one), equal to the crops the host used to cut and normalize."""
    from types import SimpleNamespace

    from alexnet_lit.config import plain
    from alexnet_lit.data import AlexNetDataModule

    cfg = compose_train(["+experiment=paper", *TINY, "data=imagenet_prepared", f"data.root={store / 'out'}"],
                        tmp_path, cache_dir)
    dm = AlexNetDataModule(**plain(cfg.data))
    dm.setup("test")
    row, label = dm.datasets["test_10crop"][0]
    assert tuple(row.shape) == (256, 256, 3) and row.dtype == torch.uint8
    dm.trainer = SimpleNamespace(testing=True, training=False)
    x, y = dm.on_after_batch_transfer((row[None], torch.tensor([label])), dataloader_idx=1)
    c = cfg.data.crop_size
    assert tuple(x.shape) == (1, 10, 3, c, c)
    centre = dm.on_after_batch_transfer((dm.datasets["test"][0][0][None], y), dataloader_idx=0)[0]
    torch.testing.assert_close(x[0, 4], centre[0])  # crop 5 of 10 is the centre crop, normalized alike


def test_crops_cut_on_the_device_are_the_workers_crops(store, tmp_path, cache_dir):
    """data.augment_on=device: the workers draw (top, left, flip) with the sample's own seed and ship the row (a JPEG
    store: its bytes); the batch cut on the device equals, bit for bit, the batch the workers would have cut (and so
    its floats)."""
    from types import SimpleNamespace

    from alexnet_lit.config import plain
    from alexnet_lit.data import AlexNetDataModule

    batches = {}
    for where in ("workers", "device"):
        cfg = compose_train(["+experiment=paper", *TINY, "data=imagenet_prepared", f"data.root={store / 'out'}",
                             "data.batch_size=6", f"data.augment_on={where}"], tmp_path, cache_dir)
        dm = AlexNetDataModule(**plain(cfg.data), seed=3)
        dm.trainer = SimpleNamespace(training=True, testing=False, global_rank=0, world_size=1, strategy=None)
        dm.setup("fit")
        raw = next(iter(dm.train_dataloader()))
        batches[where] = (raw, dm.on_after_batch_transfer(raw, 0))
    (rows, draws), crops = batches["device"][0][0], batches["workers"][0][0]
    if "jpeg" in store.name:  # the JPEG store ships each row's bytes; the device decodes the batch at once
        from alexnet_lit.data.jpeg import EncodedBatch

        assert isinstance(rows, EncodedBatch) and len(rows) == 6 and rows.items[0].data.dim() == 1
        rows, _ = rows.decode("cpu")
    assert tuple(rows.shape[1:]) == (256, 256, 3) and tuple(crops.shape[1:]) == (224, 224, 3)
    assert 0 < int(draws[:, 2].sum()) < 6  # some mirrored, some not: both branches compared
    assert len({(int(t), int(s)) for t, s in draws[:, :2]}) > 1
    assert torch.equal(batches["device"][1][0], batches["workers"][1][0])  # normalized, lit: the same floats
    assert torch.equal(batches["device"][1][1], batches["workers"][1][1])


def test_raw_folder_uses_canonical_labels(store, tmp_path, cache_dir):
    if "jpeg" in store.name:
        pytest.skip("reads the image folders the store was made from: once is enough")
    cfg = compose_train(["data=imagenet", *TINY, f"data.root={store / 'raw'}", "data.batch_size=4",
                         "data.resize_size=72", "data.crop_size=64", "trainer.limit_train_batches=2"],
                        tmp_path, cache_dir)
    from alexnet_lit.config import plain
    from alexnet_lit.data import AlexNetDataModule

    dm = AlexNetDataModule(**plain(cfg.data))
    dm.setup("fit")
    assert sorted(set(dm.datasets["train"].targets)) == [7, 300, 999]  # ILSVRC indices, not 0, 1, 2
    assert run(cfg)["val/images"] == 6


def test_store_crops_stay_hwc_and_match_the_row():
    from torchvision.transforms import v2

    from alexnet_lit.data.augment import StoreCrop
    from alexnet_lit.data.ten_crop import ten_crops

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
    whole = StoreCrop(224, "row")(row)  # the 10-crop view ships the row; the device cuts it
    assert np.array_equal(whole.numpy(), row)
    ten = ten_crops(whole[None], 224)[0]
    assert ten.shape == (10, 224, 224, 3) and np.array_equal(ten[4].numpy(), centre)
    chw = torch.from_numpy(row).permute(2, 0, 1)  # torchvision's TenCrop, the raw-folder path: same crops, same order
    reference = torch.stack(list(v2.TenCrop(224)(chw)))
    assert torch.equal(ten.movedim(-1, -3), reference)


def test_bench_data_prints_its_ratios(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from conftest import ROOT, sample_images

    sample = sample_images(tmp_path)
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "bench_data.py"), "--images", str(sample),
                           "--seconds", "0.2", "--no-compile"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1].startswith("speedup_vs_reference=") and float(lines[-1].split("=")[1]) > 0
    assert Path(ROOT / "Makefile").read_text().count("bench-data") >= 2


def test_lighting_reaches_training_batches_and_never_evaluation_batches(store, tmp_path, cache_dir, monkeypatch):
    """In a real fit + test of the paper recipe: one lighting draw per training batch, none for val/test batches."""
    default_format_only(store)
    import alexnet_lit.data.lighting as lighting

    calls = []
    real = lighting.lighting_shift
    monkeypatch.setattr(lighting, "lighting_shift", lambda n, *a, **k: calls.append(n) or real(n, *a, **k))
    cfg = compose_train(["+experiment=paper", *TINY, "data=imagenet_prepared", f"data.root={store / 'out'}",
                         "data.batch_size=4", "trainer.limit_train_batches=3"], tmp_path, cache_dir)
    metrics = run(cfg)
    assert metrics["val/images"] == 6 and metrics["test/images_10crop"] == 6  # evaluation ran, unlit
    assert calls == [4, 4, 4]  # three training batches of 4 images, each lit


EVAL_CMD = "alexnet-eval"


def test_eval_of_a_store_checkpoint_needs_no_stats_path(store, tmp_path, cache_dir, monkeypatch, capsys):
    """The checkpoint carries its input contract (crop, pixel_max, normalization, mean image): alexnet-eval
    reproduces the run's test metrics with no statistics file, and refuses a data key that contradicts it."""
    default_format_only(store)
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    recipe = ["+experiment=paper", *TINY, "data=imagenet_prepared", f"data.root={store / 'out'}", "data.batch_size=4"]
    # not the defaults, so eval must take them from the checkpoint; kaiming, so that the outputs depend on the input
    # (at the paper's init the biases of 1 make them nearly input-independent)
    # and [0, 1] pixels, on which kaiming's outputs do not saturate (at 255 the loss is the same clamped value)
    trained_with = ["data.pixel_max=1", "data.crop_size=200", "model.init=kaiming"]
    metrics = run(compose_train([*recipe, *trained_with, "trainer.limit_train_batches=2"], tmp_path / "train",
                                cache_dir))
    (best,) = (tmp_path / "train" / "checkpoints").glob("best-*.ckpt")
    from alexnet_lit.checkpoint import DATA_STATE
    from alexnet_lit.data.contract import InputContract

    state = torch.load(best, weights_only=True)
    contract = InputContract.of(state)
    assert contract.pixel_max == 1 and contract.normalize == "mean_image" and contract.crop_size == 200
    assert contract.mean_image.shape == (256, 256, 3)
    legacy = tmp_path / "legacy.ckpt"  # the layout before 2026-12-03: the contract at the top level
    state["input_contract"] = state[DATA_STATE].pop("input_contract")
    torch.save(state, legacy)

    exe = shutil.which(EVAL_CMD, path=str(Path(sys.executable).parent))
    env = {**os.environ, "ALEXNET_LIT_CACHE": str(cache_dir)}

    def evaluate(*extra):
        return subprocess.run([exe, f"ckpt_path={best}", *recipe, "logger=csv_only", f"hydra.run.dir={tmp_path}/e",
                               *extra], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)

    proc = evaluate("data.stats_path=null", "data.resize_size=256")  # an explicit value that agrees is fine
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "e" / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    for key in ("test/loss", "test/top1_err_10crop"):
        assert float([r[key] for r in rows if r.get(key)][0]) == pytest.approx(metrics[key], abs=1e-6), key

    # a store holding only the validation split, named by data.root alone (no data= group): read as a store
    val_only = tmp_path / "val_only"
    val_only.mkdir()
    for name in ("manifest.json", "stats.npz", "val.u8", "val.jpeg", "val_index.npy", "val_labels.npy"):
        if (store / "out" / name).exists():
            (val_only / name).symlink_to(store / "out" / name)
    monkeypatch.chdir(tmp_path)  # alexnet-eval's main in this process (the real process ran above)
    monkeypatch.setenv("ALEXNET_LIT_CACHE", str(cache_dir))
    code, err = run_in_process("eval", [f"ckpt_path={best}", f"data.root={val_only}", "data.batch_size=4",
                                        "logger=csv_only", f"hydra.run.dir={tmp_path}/e3"], monkeypatch, capsys)
    assert code == 0, err[-3000:]
    with open(tmp_path / "e3" / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert float([r["test/loss"] for r in rows if r.get("test/loss")][0]) == pytest.approx(metrics["test/loss"],
                                                                                            abs=1e-6)

    from alexnet_lit.cli.eval import evaluate as evaluate_in_process
    from alexnet_lit.config import ConfigError

    def compose_eval(override: str):
        return compose_train([f"ckpt_path={best}", *recipe, override], tmp_path / "e2", cache_dir)

    with pytest.raises(ConfigError, match=r"^data.pixel_max=255.0 contradicts .*, trained with data.pixel_max=1.0"):
        evaluate_in_process(compose_eval("data.pixel_max=255"), explicit={"pixel_max"})
    with pytest.raises(ConfigError, match=r"^data.pixel_max=255.0 contradicts .*legacy.ckpt, trained with data.pix"):
        evaluate_in_process(compose_train([f"ckpt_path={legacy}", *recipe, "data.pixel_max=255"], tmp_path / "e4",
                                          cache_dir), explicit={"pixel_max"})
    other = tmp_path / "other.npz"
    stats = dict(np.load(store / "out" / "stats.npz"))
    np.savez(other, **{**stats, "mean_image": stats["mean_image"] + 10})
    with pytest.raises(ConfigError, match="holds a different mean image"):
        evaluate_in_process(compose_eval(f"data.stats_path={other}"), explicit={"stats_path"})
