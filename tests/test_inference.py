"""A trained checkpoint used as users do: alexnet-predict, alexnet-eval's JSON, alexnet-neighbours (Figure 4) and
the conv1 kernels with their colour measure (Figure 3)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
import torch

from alexnet_lit.callbacks.kernels import colour_fraction, kernel_image, tower_colour
from conftest import SHARED, run_cli, run_in_process

BIN = Path(sys.executable).parent
# the quickstart recipe (kaiming init, [0, 1] pixels, lr 0.02) on 4 of the embedded shapes, small enough to train
# in about a minute on 2 cores and learn enough for the neighbours to mean something
DATA = ["data.generated.classes=4", "data.num_classes=4", "data.generated.train_per_class=100",
        "data.generated.val_per_class=10"]
RECIPE = ["+experiment=quickstart", "+debug=tiny", "trainer.accelerator=cpu", "trainer.precision=32-true",
          "model.channels_last=false", *DATA, "data.batch_size=32", "trainer.max_epochs=8", "model.width=0.25",
          "model.fc_units=128", "model.scheduler.patience=5", "logger=csv_only"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("trained")
    proc = run_cli([*RECIPE, f"paths.log_dir={root / 'logs'}", "run_id=q", "test=false"], root, root / "cache",
                   timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = root / "logs" / "quickstart" / "runs" / "q"
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    (data,) = (root / "cache" / "generated").glob("shapes4-*")
    return {"root": root, "run": run, "ckpt": best, "data": data, "cache": root / "cache"}


def tool(name: str) -> str:
    return str(BIN / name)


# --- Figure 3: the colour measure on kernels made to be grey or coloured --------------------------------------
def test_colour_fraction_tells_grey_from_colour_kernels():
    torch.manual_seed(0)
    pattern = torch.randn(8, 1, 11, 11)
    grey = pattern.repeat(1, 3, 1, 1)  # R = G = B: colour-agnostic
    one_channel = torch.zeros(8, 3, 11, 11)
    one_channel[:, 1] = pattern[:, 0]  # green only
    opponent = torch.cat([pattern, -pattern, torch.zeros_like(pattern)], dim=1)  # +R -G
    assert colour_fraction(grey).abs().max() < 1e-6
    assert colour_fraction(one_channel) == pytest.approx(torch.full((8,), 2 / 3), abs=1e-6)
    assert colour_fraction(opponent) == pytest.approx(torch.ones(8), abs=1e-6)
    random = colour_fraction(torch.randn(4096, 3, 11, 11)).mean()
    assert float(random) == pytest.approx(2 / 3, abs=0.01)  # untrained kernels sit at 2/3
    # two towers: conv1's first half is tower 1 (Figure 2)
    assert tower_colour(torch.cat([grey, opponent]), towers=2) == pytest.approx([0.0, 1.0], abs=1e-6)
    assert tower_colour(torch.cat([grey, opponent]), towers=1) == pytest.approx([0.5], abs=1e-6)
    img = kernel_image(torch.cat([grey, opponent]), towers=2)
    assert img.shape[0] == 3 and 0 <= float(img.min()) and float(img.max()) <= 1
    one = kernel_image(torch.cat([grey, opponent]), towers=1)
    assert img.shape[2] > one.shape[2]  # the towers drawn apart, with a gap


def test_kernels_callback_and_command(trained, tmp_path):
    figures = sorted((trained["run"] / "figures").glob("conv1-epoch*.png"))
    assert len(figures) == 8, figures  # one per epoch (callbacks.kernels.every_n_epochs=1)
    with (trained["run"] / "csv" / "metrics.csv").open() as f:
        colours = [float(r["conv1/colour_tower1"]) for r in csv.DictReader(f) if r.get("conv1/colour_tower1")]
    assert len(colours) == 8 and all(0 <= c <= 1 for c in colours)
    assert "conv1/colour_tower2" in (trained["run"] / "csv" / "metrics.csv").read_text()  # towers=two: 2 numbers
    proc = run_cli([f"ckpt_path={trained['ckpt']}", f"out={tmp_path / 'k.png'}"], tmp_path, trained["cache"],
                   script=tool("alexnet-kernels"))
    assert proc.returncode == 0, proc.stderr
    assert "tower 1 colour fraction" in proc.stdout and "tower 2 colour fraction" in proc.stdout
    assert (tmp_path / "k.png").stat().st_size > 1000


# --- alexnet-predict -----------------------------------------------------------------------------------------
def predict(trained, tmp_path, *args):
    return run_cli([f"ckpt_path={trained['ckpt']}", *args], tmp_path, trained["cache"], script=tool("alexnet-predict"))


@pytest.mark.skipif(not (SHARED / "imagenet-sample").is_dir(), reason="needs ../shared/data/imagenet-sample")
def test_predict_names_probabilities_and_a_bad_file(trained, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    sample = sorted((SHARED / "imagenet-sample").glob("*.JPEG"))
    chosen = sample[:5] + [p for p in sample if p.stat().st_size < 40_000][:1]  # a small one too
    for p in chosen:
        (inputs / p.name).symlink_to(p)
    (inputs / "empty.JPEG").write_bytes(b"")
    (inputs / "not-an-image.jpg").write_text("hello")
    proc = predict(trained, tmp_path, f"inputs={inputs}", f"out={tmp_path / 'p.jsonl'}")
    assert proc.returncode == 1, proc.stderr  # some inputs failed
    assert "2 of 8 inputs could not be read" in proc.stderr
    lines = proc.stdout.splitlines()
    empty = next(line for line in lines if "empty.JPEG" in line)
    assert "FAILED" in empty and "empty file" in empty
    assert "FAILED" in next(line for line in lines if "not-an-image.jpg" in line)
    records = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(records) == 8
    ok = [r for r in records if "top" in r]
    assert len(ok) == 6
    names = {"00_disk", "01_ring", "02_square", "03_frame"}  # the checkpoint's own classes, from its contract
    for r in ok:
        probs = [t["prob"] for t in r["top"]]
        assert [t["class"] for t in r["top"]] and {t["class"] for t in r["top"]} <= names
        assert probs == sorted(probs, reverse=True) and 0.99 < sum(probs) <= 1.0001  # 4 classes: all of them
    for p in chosen:
        assert any(p.name in line and "%" in line for line in lines)


def test_predict_ten_crop_to_stdout_and_user_errors(trained, tmp_path, monkeypatch, capsys):
    val = sorted((trained["data"] / "val").rglob("*.JPEG"))[:3]
    proc = predict(trained, tmp_path, f"inputs=[{','.join(map(str, val))}]", "out=-", "ten_crop=true", "top_k=2")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["path"] for r in records] == [str(v) for v in val] and all(len(r["top"]) == 2 for r in records)
    one = predict(trained, tmp_path, f"inputs={val[0]}", "out=-", "top_k=2")
    assert json.loads(one.stdout)["top"] != records[0]["top"]  # 10 crops average differently than the centre one
    monkeypatch.chdir(tmp_path)  # the user errors: in this process (the same main, without a new interpreter)
    code, err = run_in_process("predict", [f"ckpt_path={trained['ckpt']}", f"inputs={tmp_path / 'nothing'}"],
                               monkeypatch, capsys)
    assert code == 2 and err.count("\n") == 1 and "no such file or folder" in err
    code, err = run_in_process("predict", [f"inputs={val[0]}"], monkeypatch, capsys)
    assert code == 2 and err.startswith("error: ckpt_path not set")


# --- alexnet-eval's table and JSON ---------------------------------------------------------------------------
def test_eval_prints_a_table_and_writes_json(trained, tmp_path):
    out = tmp_path / "eval.json"
    proc = run_cli([f"ckpt_path={trained['ckpt']}", "+experiment=quickstart", "+debug=tiny", *DATA,
                    "trainer.accelerator=cpu", "trainer.precision=32-true", f"out={out}"], tmp_path,
                   trained["cache"], script=tool("alexnet-eval"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["ckpt_path"] == str(trained["ckpt"]) and result["split"] == "val"
    for view in ("centre_crop", "ten_crop"):
        assert result[view]["images"] == 40  # 4 classes x 10 val images, each counted once
        assert 0 <= result[view]["top1_err"] <= 1 and 0 <= result[view]["loss"]
        assert result[view]["top5_err"] is None  # 4 classes: top-5 is not measured
    row = next(line for line in proc.stdout.splitlines() if line.startswith("10 crops"))
    assert f"{100 * result['ten_crop']['top1_err']:.2f}%" in row and "40" in row


# --- Figure 4: nearest neighbours in the last hidden layer ---------------------------------------------------
def test_neighbours_share_the_query_class_far_more_often_than_chance(trained, tmp_path):
    proc = run_cli([f"ckpt_path={trained['ckpt']}", f"images={trained['data'] / 'val'}", f"out_dir={tmp_path}"],
                   tmp_path, trained["cache"], script=tool("alexnet-neighbours"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "40 queries against 400 training images" in proc.stdout  # the run's own training split, by default
    record = json.loads((tmp_path / "neighbours.json").read_text())
    same = [n["class"] == Path(q["query"]).parent.name for q in record for n in q["neighbours"]]
    assert len(same) == 40 * 6  # the paper's six neighbours per query
    for q in record:
        d = [n["distance"] for n in q["neighbours"]]
        assert d == sorted(d)
    assert sum(same) / len(same) > 1.6 * 0.25, sum(same) / len(same)  # chance: 1 in 4 classes
    assert (tmp_path / "neighbours.png").stat().st_size > 10_000


def test_neighbours_match_a_direct_search():
    from alexnet_lit.cli.neighbours import nearest

    torch.manual_seed(0)
    q, t = torch.randn(5, 16), torch.randn(50, 16)
    dist, idx = nearest(q, t, 6)
    for i in range(5):
        direct = ((t - q[i]) ** 2).sum(1).sqrt()
        order = direct.argsort()[:6]
        assert idx[i].tolist() == order.tolist()
        assert dist[i] == pytest.approx(direct[order], rel=1e-5)
