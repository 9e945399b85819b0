"""alexnet-prepare: the real kinds of bad files ImageNet holds, canonical labels, statistics, kill and resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alexnet_lit.config import SIDE as SIZE
from alexnet_lit.data.chunks import BadImage, load_square
from alexnet_lit.data.classes import UnknownClassFolder, wnids
from alexnet_lit.data.prepare import prepare
from alexnet_lit.data.store import MissingStore, check_store
from conftest import run_in_process

PREPARE = Path(sys.executable).parent / "alexnet-prepare"


def jpeg(path: Path, size=(320, 240), color=(200, 30, 60), mode="RGB", fmt="JPEG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, fmt)
    return path


def odd_files(root: Path) -> dict[str, Path]:
    """One of each kind of file the ILSVRC-2012 training set really contains, and three that cannot be decoded."""
    w = root / "train" / wnids()[0]
    files = {
        "rgb": jpeg(w / "rgb.JPEG"),
        "cmyk": jpeg(w / "cmyk.JPEG", color=(255, 0, 0, 0), mode="CMYK"),  # pure cyan ink
        "png": jpeg(w / "n02105855_2933.JPEG", fmt="PNG"),  # a PNG named .JPEG, as in the real set
        "gray": jpeg(w / "gray.JPEG", color=128, mode="L"),
        "tiny": jpeg(w / "tiny.JPEG", size=(40, 30)),
        "wide": jpeg(w / "wide.JPEG", size=(1000, 20)),
        "empty": w / "empty.JPEG",
        "text": w / "text.JPEG",
        "truncated": w / "truncated.JPEG",
    }
    files["empty"].write_bytes(b"")
    files["text"].write_text("not an image\n")
    full = jpeg(w / "full.tmp", size=(400, 300))
    data = full.read_bytes()
    files["truncated"].write_bytes(data[: len(data) // 2])
    full.unlink()
    return files


def test_odd_but_valid_files_decode_to_rgb(tmp_path):
    files = odd_files(tmp_path)
    for kind in ("rgb", "cmyk", "png", "gray", "tiny", "wide"):
        img = load_square(files[kind])
        assert img.shape == (SIZE, SIZE, 3) and img.dtype == np.uint8, kind
    cyan = load_square(files["cmyk"]).reshape(-1, 3).mean(0)
    assert cyan[0] < 30 and cyan[1] > 220 and cyan[2] > 220
    gray = load_square(files["gray"])
    assert (gray == 128).all()
    for kind in ("empty", "text", "truncated"):
        with pytest.raises(BadImage, match=str(files[kind])):
            load_square(files[kind])


def test_bad_files_are_listed_and_fail_the_run(tmp_path):
    files = odd_files(tmp_path / "raw")
    jpeg(tmp_path / "raw" / "val" / wnids()[0] / "v.JPEG")
    proc = subprocess.run([str(PREPARE), f"root={tmp_path / 'raw'}", f"out_dir={tmp_path / 'out'}", "workers=2",
                           "chunk_size=2"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw"]  # nothing in the launch folder (no log)
    for kind in ("empty", "text", "truncated"):
        assert str(files[kind]) in proc.stderr
    assert "skip_bad=true" in proc.stderr
    assert not json.loads((tmp_path / "out" / "manifest.json").read_text())["complete"]


def test_skip_bad_records_them_and_leaves_their_rows_out(tmp_path):
    files = odd_files(tmp_path / "raw")
    jpeg(tmp_path / "raw" / "val" / wnids()[0] / "v.JPEG")
    manifest = prepare(tmp_path / "raw", tmp_path / "out", skip_bad=True, chunk_size=4, show_progress=False)
    assert manifest["complete"] and manifest["splits"]["train"]["images"] == 6
    skipped = {e["path"] for e in manifest["skipped"]}
    assert all(e["reason"].startswith("cannot decode (") and e["split"] == "train" for e in manifest["skipped"])
    assert skipped == {str(files[k]) for k in ("empty", "text", "truncated")}
    labels = np.load(tmp_path / "out" / "train_labels.npy")
    assert (labels == -1).sum() == 3 and (labels == 0).sum() == 6


def test_labels_are_canonical_even_with_missing_classes(tmp_path):
    picks = [5, 400, 999]
    for i in picks:
        jpeg(tmp_path / "raw" / "train" / wnids()[i] / "a.JPEG")
        jpeg(tmp_path / "raw" / "val" / wnids()[i] / "b.JPEG")
    manifest = prepare(tmp_path / "raw", tmp_path / "out", show_progress=False)
    assert np.load(tmp_path / "out" / "train_labels.npy").tolist() == picks
    assert list(manifest["splits"]["val"]["per_class"]) == [wnids()[i] for i in picks]  # keyed by wnid


def test_unknown_class_folder_is_an_error_naming_it(tmp_path):
    jpeg(tmp_path / "raw" / "train" / "cats" / "a.JPEG")
    with pytest.raises(UnknownClassFolder, match=r"raw/train/cats: not an ILSVRC-2012 wnid.*custom_classes=true"):
        prepare(tmp_path / "raw", tmp_path / "out", show_progress=False)
    jpeg(tmp_path / "raw" / "val" / "cats" / "b.JPEG")
    assert prepare(tmp_path / "raw", tmp_path / "out2", custom_classes=True, show_progress=False)["complete"]


def noisy_set(root: Path, per_class: int, size=(640, 480), classes=(0, 1, 2), seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for c in classes:
        for split in ("train", "val"):
            for i in range(per_class if split == "train" else 2):
                arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                arr[..., c % 3] //= 2  # a per-class colour cast, so the statistics have structure
                d = root / split / wnids()[c]
                d.mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr).save(d / f"{i:04d}.JPEG", quality=90)


FORMATS = ["jpeg", "raw"]


def decoded_rows(out: Path, split: str = "train") -> np.ndarray:
    """Every row of a store as training reads it (a JPEG store's decoded pixels)."""
    from alexnet_lit.data.store import PreparedSplit

    ds = PreparedSplit(out, split)
    return np.stack([np.asarray(ds.image(i)) for i in range(len(ds))])


@pytest.mark.parametrize("fmt", FORMATS)
def test_statistics_match_a_direct_computation(fmt, tmp_path):
    """Of the pixels training reads: for a JPEG store, the decoded JPEGs, not the squares before encoding."""
    noisy_set(tmp_path / "raw", per_class=4, size=(300, 260))
    prepare(tmp_path / "raw", tmp_path / "out", chunk_size=5, workers=2, show_progress=False, format=fmt)
    rows = decoded_rows(tmp_path / "out").astype(np.float64)
    stats = np.load(tmp_path / "out" / "stats.npz")
    np.testing.assert_allclose(stats["mean_image"], rows.mean(0), rtol=1e-12)
    pixels = rows.reshape(-1, 3)
    cov = np.cov(pixels, rowvar=False, bias=True)
    np.testing.assert_allclose(stats["rgb_cov"], cov, rtol=1e-9)
    lam, vec = stats["eigval"], stats["eigvec"]
    assert lam[0] >= lam[1] >= lam[2] > 0
    np.testing.assert_allclose(cov @ vec, vec * lam, rtol=1e-7, atol=1e-6)


def store_bytes(out: Path) -> dict[str, bytes]:
    """Every file of the store but its progress state, and the statistics' arrays (not their zip container)."""
    files = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
             if p.is_file() and ".progress" not in p.parts and p.name != "manifest.json"}
    with np.load(out / "stats.npz") as z:
        files.update({k: z[k].tobytes() for k in z.files})
    return files


@pytest.fixture(scope="module")
def forty_per_class(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """120 images (40 per class) and their stores, prepared without interruption: the references."""
    root = tmp_path_factory.mktemp("forty")
    noisy_set(root / "raw", per_class=40)
    for fmt in FORMATS:
        prepare(root / "raw", root / f"store-{fmt}", chunk_size=4, show_progress=False, format=fmt)
    return root / "raw", {fmt: root / f"store-{fmt}" for fmt in FORMATS}


@pytest.mark.parametrize("sig, code, fmt", [(signal.SIGKILL, -signal.SIGKILL, "jpeg"), (signal.SIGINT, 130, "raw"),
                                            (signal.SIGTERM, 143, "jpeg")])
def test_interrupted_prepare_continues_and_equals_an_uninterrupted_run(sig, code, fmt, forty_per_class, tmp_path,
                                                                       monkeypatch, capsys):
    """SIGKILL, or Ctrl-C (SIGINT to the parent alone, so the workers cannot help it stop): run again, same bytes."""
    raw, references = forty_per_class
    reference, out = references[fmt], tmp_path / "out"
    args = [f"root={raw}", f"out_dir={out}", "workers=1", "chunk_size=4", "save_every=0", f"format={fmt}"]
    proc = subprocess.Popen([str(PREPARE), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    state = out / ".progress" / "train.npz"
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline and proc.poll() is None:
        if state.exists():
            try:
                done = int(np.load(state)["done"].sum())
            except (OSError, ValueError, KeyError):
                done = 0
            if done >= 3:
                break
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert 3 <= done < 30 and not json.loads((out / "manifest.json").read_text())["complete"]
    with pytest.raises(MissingStore, match="not a complete store.*run the same alexnet-prepare command again"):
        check_store(out, "train")  # a half-made store is never taken for one
    if sig != signal.SIGKILL:
        assert "run the same command again to continue" in err
    for _ in range(50):  # the workers leave with their parent (no orphan keeps decoding or holding memory)
        left = subprocess.run(["pgrep", "-f", f"out_dir={out}"], capture_output=True, text=True).stdout.split()
        if not left:
            break
        time.sleep(0.1)
    assert not left, f"worker processes left behind: {left}"

    code, err = run_in_process("prepare", args, monkeypatch, capsys)  # run again (its main, in this process)
    assert code == 0, err
    assert store_bytes(out) == store_bytes(reference)
    assert (out / "manifest.json").read_text() == (reference / "manifest.json").read_text().replace(
        str(reference), str(out))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["splits"]["train"]["images"] == 120


def test_decode_error_while_training_on_the_fly_names_the_file(tmp_path):
    from alexnet_lit.data.sources import CanonicalImageFolder, DecodeError

    files = odd_files(tmp_path)
    ds = CanonicalImageFolder(str(tmp_path / "train"), transform=None, custom_classes=False, min_size=256)
    by_path = {p: i for i, (p, _) in enumerate(ds.samples)}
    assert ds[by_path[str(files["cmyk"])]][0].mode == "RGB"
    with pytest.raises(DecodeError, match=str(files["truncated"])):
        ds[by_path[str(files["truncated"])]]


def test_exif_orientation_is_ignored_the_same_way_everywhere(tmp_path):
    """Policy (README): pixels as stored, in prepare and on the fly alike; a rotate-90 tag changes nothing."""
    from alexnet_lit.data.sources import rgb_loader

    arr = np.zeros((200, 400, 3), np.uint8)
    arr[:, :200] = 255  # left half white: a 90-degree rotation would put it on top
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    tagged, plain = tmp_path / "tagged.JPEG", tmp_path / "plain.JPEG"
    Image.fromarray(arr).save(tagged, quality=95, exif=exif)
    Image.fromarray(arr).save(plain, quality=95)
    with Image.open(tagged) as im:
        assert im.getexif()[0x0112] == 6
    np.testing.assert_array_equal(load_square(tagged), load_square(plain))
    assert rgb_loader(str(tagged)).size == (400, 200)


def every_file(out: Path) -> dict[str, bytes]:
    """Every file of a store, the progress state included, by its path in the store."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_a_store_of_another_source_is_refused_and_overwrite_rebuilds_it(tmp_path, monkeypatch, capsys):
    """The same number of files from another folder: refused naming both (not served stale); overwrite=true
    ends byte-identical to a fresh prepare of the new source."""
    noisy_set(tmp_path / "a", per_class=3, size=(300, 260), seed=1)
    noisy_set(tmp_path / "b", per_class=3, size=(300, 260), seed=2)
    out = tmp_path / "out"
    prepare(tmp_path / "a", out, chunk_size=4, show_progress=False)
    before = every_file(out)
    args = [f"root={tmp_path / 'b'}", f"out_dir={out}", "workers=1", "chunk_size=4"]
    code, err = run_in_process("prepare", args, monkeypatch, capsys)  # alexnet-prepare's main, in this process
    assert code == 2 and err.count("\n") == 1, err
    assert f"holds a store of {tmp_path / 'a'}, not of root={tmp_path / 'b'}" in err
    assert "overwrite=true" in err and every_file(out) == before
    code, err = run_in_process("prepare", [*args, "overwrite=true"], monkeypatch, capsys)
    assert code == 0, err
    prepare(tmp_path / "b", tmp_path / "fresh", chunk_size=4, show_progress=False)
    assert every_file(out) == every_file(tmp_path / "fresh")


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_bad_file_fixed_in_place_is_redone(fmt, tmp_path, monkeypatch, capsys):
    """As the error message advises: copy a good JPEG over the bad file and run again. Only its chunk is redone
    (its old rows leave the statistics first), and the store equals a fresh prepare of the fixed tree."""
    raw = tmp_path / "raw"
    noisy_set(raw, per_class=4, size=(300, 260))
    bad = raw / "train" / wnids()[1] / "0002.JPEG"
    good = bad.read_bytes()
    bad.write_bytes(good[: len(good) // 3])
    out = tmp_path / "out"
    args = [f"root={raw}", f"out_dir={out}", "workers=1", "chunk_size=3", f"format={fmt}"]
    code, err = run_in_process("prepare", args, monkeypatch, capsys)  # alexnet-prepare's main, in this process
    assert code == 1 and str(bad) in err
    bad.write_bytes(good)
    code, err = run_in_process("prepare", args, monkeypatch, capsys)
    assert code == 0, err
    prepare(raw, tmp_path / "fresh", chunk_size=3, show_progress=False, format=fmt)
    assert every_file(out) == every_file(tmp_path / "fresh")
    # and a file replaced after a complete run: the next run notices it too
    other = raw / "train" / wnids()[2] / "0000.JPEG"
    (raw / "train" / wnids()[0] / "0001.JPEG").replace(other)
    prepare(raw, out, chunk_size=3, show_progress=False, format=fmt)
    prepare(raw, tmp_path / "fresh2", chunk_size=3, show_progress=False, format=fmt)
    assert every_file(out) == every_file(tmp_path / "fresh2")


def test_size_makes_a_smaller_store_that_training_reads_at_its_size(tmp_path):
    from alexnet_lit.data.sources import MissingData, check_source
    from alexnet_lit.data.store import PreparedSplit, store_size

    noisy_set(tmp_path / "raw", per_class=3, size=(50, 40))
    manifest = prepare(tmp_path / "raw", tmp_path / "out", workers=1, show_progress=False, size=36, format="raw")
    assert manifest["params"]["size"] == 36 and store_size(tmp_path / "out") == 36
    rows = np.fromfile(tmp_path / "out" / "train.u8", dtype=np.uint8).reshape(-1, 36, 36, 3)
    first = sorted((tmp_path / "raw" / "train" / wnids()[0]).iterdir())[0]
    np.testing.assert_array_equal(rows[0], load_square(first, 36))
    assert np.load(tmp_path / "out" / "stats.npz")["mean_image"].shape == (36, 36, 3)
    assert PreparedSplit(tmp_path / "out", "train").image(0).shape == (36, 36, 3)

    class Data:  # what check_source reads of the data config
        source, root, normalize, stats_path, download = "prepared", str(tmp_path / "out"), "channel", None, False
        lighting = type("L", (), {"enabled": False})
        resize_size = 256

    with pytest.raises(MissingData, match="data.resize_size=256, but the store .* holds 36x36 images"):
        check_source(Data)
    Data.resize_size = 36
    check_source(Data)
