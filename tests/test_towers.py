"""The paper's two towers on two devices (models/towers.py, parallel.py), on 2 (and 4) gloo processes of this CPU:
the same numbers as the one-device ``towers=two`` net, checkpoints that load either way, and what describe shows."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from conftest import ROOT, run_in_process
from test_cli import EVAL, describe_rows, read_rows
from test_resume import run_folder, train, train_here, val_errors

TOWERS = ["trainer=towers_cpu", "trainer.devices=2", "trainer.precision=32-true"]  # after TINY's devices=1
TOLERANCE = 1e-5  # float32, the bound


def test_logits_gradients_and_one_step_equal_the_one_device_net(tmp_path):
    """Same weights, same batch: logits, every parameter's gradient and the weights after one SGD step, with
    dropout off and on (the masks made equal by the same generator state on both ranks, models/towers.py)."""
    out = tmp_path / "parity.json"
    for attempt in range(2):
        proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                               str(ROOT / "tests" / "towers_worker.py"), str(out)], capture_output=True, text=True,
                              timeout=300)
        # one retry for the one known flake: a rank aborting at exit in gloo's teardown (seen at 34be0b3 too, only
        # inside the full suite); any other failure, or the abort twice, fails the test
        if proc.returncode == 0 or "terminate called without an active exception" not in proc.stderr:
            break
        warnings.warn(f"towers_worker aborted at exit (attempt {attempt + 1}); running it again", stacklevel=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    for case in ("dropout_off", "dropout_on"):
        r = result[case]
        assert r["logits"] < TOLERANCE, (case, r["logits"])
        assert len(r["gradients"]) == 16 and max(r["gradients"].values()) < TOLERANCE, (case, r["gradients"])
        assert max(r["weights_after_step"].values()) < TOLERANCE, (case, r["weights_after_step"])
        assert r["gradient_scale"] > 1e-2  # the gradients compared are not all zero
    assert result["dropout_on"]["masks_used"] and not result["dropout_off"]["masks_used"]


def final_state(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)


def assert_same_network(a: dict, b: dict) -> None:
    assert a["global_step"] == b["global_step"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    worst = max((a["state_dict"][k] - b["state_dict"][k]).abs().max().item() for k in a["state_dict"])
    assert worst < TOLERANCE, worst
    va, vb = a["optimizer_states"][0]["state"], b["optimizer_states"][0]["state"]
    assert va.keys() == vb.keys()
    assert max((va[i]["momentum_buffer"] - vb[i]["momentum_buffer"]).abs().max().item() for i in va) < TOLERANCE


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cache_dir) -> dict:
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("ALEXNET_LIT_CACHE", str(cache_dir))  # the generated data set the runs trained on
        monkeypatch.setenv("WANDB_MODE", "offline")
        return towers_runs(tmp_path_factory, cache_dir, monkeypatch)


def towers_runs(tmp_path_factory, cache_dir, monkeypatch) -> dict:
    """u: 2 epochs on one process; a: epoch 1 on one process, epoch 2 on two (resumed); b: epoch 1 on two (tested,
    and its checkpoint evaluated by alexnet-eval on one process), epoch 2 on one. Dropout on (p=0.5)."""
    tmp = tmp_path_factory.mktemp("towers")
    out: dict = {"tmp": tmp}
    # channels_last: its checkpoints' strides differ from the shards'. The one-process starts run in this process.
    train_here(tmp, cache_dir, "u", ["model.channels_last=true"])
    train_here(tmp, cache_dir, "a", ["model.channels_last=true", "trainer.max_epochs=1"])
    for run_id, args in [("a", [*TOWERS, "ckpt_path=last"]), ("b", [*TOWERS, "trainer.max_epochs=1", "test=true"])]:
        proc = train(tmp, cache_dir, [f"run_id={run_id}", "model.channels_last=true", *args])
        assert proc.returncode == 0, proc.stderr[-3000:]
    (best,) = (run_folder(tmp, "b") / "checkpoints").glob("best-*.ckpt")
    code, err = run_in_process("eval", [f"ckpt_path={best}", "+debug=tiny", "logger=csv_only",  # on one process
                                        f"hydra.run.dir={tmp / 'eval'}", f"out={tmp / 'eval.json'}"], monkeypatch)
    assert code == 0, err[-3000:]
    out["b_epoch1"] = read_rows(run_folder(tmp, "b") / "csv" / "metrics.csv")
    out["eval"] = read_rows(tmp / "eval" / "csv" / "metrics.csv")
    train_here(tmp, cache_dir, "b", ["model.channels_last=true", "ckpt_path=last"])  # two -> one
    return out


@pytest.mark.skipif(EVAL is None, reason="alexnet-eval is not installed (pip install -e .)")
def test_two_processes_train_the_one_device_network_and_checkpoints_move_both_ways(runs):
    tmp, u = runs["tmp"], run_folder(runs["tmp"], "u")
    # a: one device -> two; b: two -> one. Both end where the uninterrupted one-device run ends.
    for run_id in "ab":
        assert_same_network(final_state(run_folder(tmp, run_id)), final_state(u))
        assert val_errors(run_folder(tmp, run_id)) == val_errors(u), run_id
    rows = runs["b_epoch1"]  # the two-process epoch: every validation and test image counted once, not twice
    assert [float(r["val/images"]) for r in rows if r.get("val/images")] == [40.0]
    assert [float(r["test/images_10crop"]) for r in rows if r.get("test/images_10crop")] == [40.0]
    for key in ("test/top1_err", "test/top1_err_10crop", "test/loss"):  # alexnet-eval on one process
        tested = [float(r[key]) for r in rows if r.get(key)]
        evaluated = [float(r[key]) for r in runs["eval"] if r.get(key)]
        assert tested and evaluated and evaluated[0] == pytest.approx(tested[0], abs=1e-6), key


def test_two_tower_pairs_are_data_parallel_replicas(tmp_path, cache_dir):
    """4 processes = 2 pairs, 16 images each; one process with the global batch of 32 (dropout 0: masks are per
    replica) trains the same network; validation counts every image once."""
    common = ["model.dropout=0", "checkpoint_every_n_steps=null", "trainer.max_epochs=1"]
    train_here(tmp_path, cache_dir, "one", [*common, "data.batch_size=32"])
    four = train(tmp_path, cache_dir, [*common, "run_id=four", *TOWERS, "trainer.devices=4"], timeout=400)
    assert four.returncode == 0, four.stderr[-3000:]
    a, b = final_state(run_folder(tmp_path, "one")), final_state(run_folder(tmp_path, "four"))
    assert a["global_step"] == b["global_step"] == 120 // 32
    assert_same_network(a, b)
    assert val_errors(run_folder(tmp_path, "one")) == val_errors(run_folder(tmp_path, "four"))
    rows = read_rows(run_folder(tmp_path, "four") / "csv" / "metrics.csv")
    assert [float(r["val/images"]) for r in rows if r.get("val/images")] == [40.0]


def test_describe_shows_what_each_rank_holds_and_the_bytes_between_the_towers():
    text = describe_rows(["trainer=towers_cpu"])  # the paper's net, fp32 activations
    assert "2048 units, 18,876,416 params each" in text  # fc6, half on each rank
    assert "500 units, 2,048,500 params each" in text  # fc8 split too
    per_image = {"input of conv3": 128 * 13 * 13 * 4, "input of fc6": 128 * 6 * 6 * 4, "input of fc7": 2048 * 4,
                 "input of fc8": 2048 * 4, "logits": 500 * 4}
    for where, sent in per_image.items():
        (line,) = [ln for ln in text.splitlines() if where in ln]
        assert f"{sent:,}" in line, line
    total = 2 * sum(v for k, v in per_image.items() if k != "logits") + per_image["logits"]
    assert f"forward + backward: {total:,}" in text
    assert text.strip().endswith("total params: 60,965,224")
    assert "input of conv4" not in text and "input of conv2" not in text  # grouped: each tower its own
