"""What a run prints, read as a user reads it: progress in a log file, no warning or tip the user cannot act on,
W&B's sync command once, a W&B run that cannot reach its server continuing offline."""

from __future__ import annotations

import os
import stat

from conftest import run_cli

# the tiny network on the tiny data, but with the default callbacks (progress included), W&B and bf16 autocast
SMALL = ["+experiment=quickstart", "data.generated.train_per_class=12", "data.generated.val_per_class=4",
         "data.batch_size=16", "model.width=0.0625", "model.fc_units=32", "trainer.max_epochs=1",
         "trainer.log_every_n_steps=2", "data.num_workers=0"]
NOISE = ["💡 Tip", "LeafSpec", "anonymous setting", "Precision bf16-mixed is not supported", "Total FLOPs: 0",
         "Traceback", "UserWarning", "DeprecationWarning"]


def test_a_run_into_a_log_file_prints_progress_lines_and_no_noise(tmp_path, cache_dir):
    proc = run_cli(SMALL, tmp_path, cache_dir)  # stdout is a pipe, as with nohup, CI or SLURM
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    steps = [line for line in proc.stdout.splitlines() if line.startswith("epoch 1/1 step ")]
    assert len(steps) == 4 and steps[-1].startswith("epoch 1/1 step 7/7 loss ") and "img/s epoch ETA" in steps[0]
    assert any(line.startswith("epoch 1 val/top1_err ") for line in proc.stdout.splitlines())
    for noise in NOISE:
        assert noise not in out, noise
    assert out.count("wandb sync ") == 1  # ours, once; W&B's own footer is silenced
    run_dir = next((tmp_path / "logs" / "quickstart" / "runs").iterdir())
    expected = [".hydra", "checkpoints", "csv", "figures", "run.json", "wandb"]  # no train.log
    assert sorted(p.name for p in run_dir.iterdir()) == expected


def test_wandb_without_network_continues_offline(tmp_path, cache_dir):
    """A key but no server (a closed port stands in for a node without internet): one warning, then offline."""
    env = {"WANDB_API_KEY": "a" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9", "WANDB_MODE": ""}
    proc = run_cli(["+debug=tiny", "logger=default", "logger.wandb.init_timeout=3", "trainer.limit_train_batches=1",
                    "test=false"], tmp_path, cache_dir, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "warning: W&B could not start online within 3 s" in proc.stderr
    assert "W&B ran offline" in proc.stdout and list(tmp_path.rglob("offline-run-*"))


def test_long_wandb_groups_are_hashed_not_cut():
    from alexnet_lit.loggers import group_name

    long = [f"model.key{i}=value" for i in range(20)]
    a, b = group_name("paper", [*long, "seedish=1"]), group_name("paper", [*long, "seedish=2"])
    assert len(a) == len(b) == 128 and a != b and a[:119] == b[:119]
    assert group_name("paper", ["model.lrn.enabled=false"]) == "paper/model.lrn.enabled=false"


def test_the_generated_data_cache_is_readable_by_its_group(tmp_path):
    from alexnet_lit.data.generated import ensure_generated

    old = os.umask(0o022)
    try:
        root = ensure_generated(tmp_path, classes=2, train_per_class=1, val_per_class=1, image_size=32, seed=0)
    finally:
        os.umask(old)
    mode = stat.S_IMODE(root.stat().st_mode)
    assert mode & stat.S_IRGRP and mode & stat.S_IXGRP, oct(mode)
