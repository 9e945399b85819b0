"""Shared test helpers: compose the real configs (conf/) with tiny sizes, run the real train.py."""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED = ROOT.parent / "shared" / "data"

# The debug=tiny group (conf/debug/tiny.yaml: the paper's network at 1/16 width on 64 px crops of the embedded
# data, ~10k parameters), on one CPU process in fp32 so that results are exact. Keep +experiment before it.
TINY = ["+debug=tiny", "trainer.accelerator=cpu", "trainer.devices=1", "trainer.precision=32-true"]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One cache (generated data) for the whole session, outside the repository."""
    return tmp_path_factory.mktemp("cache")


def compose_train(overrides: list[str], output_dir: Path, cache: Path) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"paths.output_dir={output_dir}", f"data.cache_dir={cache}"])
    return cfg


def sample_images(tmp_path: Path, n: int = 8) -> Path:
    """A folder of links to the first ``n`` shared ILSVRC-2012 sample images; skips the test without them."""
    if not (SHARED / "imagenet-sample").is_dir():
        pytest.skip("../shared/data/imagenet-sample not found (absent outside this workplace)")
    sample = tmp_path / "sample"
    sample.mkdir()
    for f in sorted((SHARED / "imagenet-sample").glob("*.JPEG"))[:n]:
        (sample / f.name).symlink_to(f)
    return sample


def run_cli(args: list[str], cwd: Path, cache: Path, timeout: int = 300, script: str = "train.py",
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Run train.py (or another entry point) as a user would, in a fresh process."""
    full_env = {**os.environ, "ALEXNET_LIT_CACHE": str(cache), "WANDB_MODE": "offline", **(env or {})}
    cmd = [sys.executable, str(ROOT / script), *args] if script.endswith(".py") else [script, *args]
    return subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def run_in_process(name: str, args: list[str], monkeypatch, capsys=None) -> tuple[int, str]:
    """An entry point's ``main`` in this process (what a user error or a refusal prints, without the seconds a new
    process spends importing): its exit code and stderr (from ``capsys``, or, in a module fixture, which has none,
    from sys.stderr redirected for the call)."""
    main = importlib.import_module(f"alexnet_lit.cli.{name}").main
    monkeypatch.setattr(sys, "argv", [f"alexnet-{name}", *args])
    code, buffer = 0, io.StringIO()
    try:
        with contextlib.redirect_stderr(buffer) if capsys is None else contextlib.nullcontext():
            main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return code, buffer.getvalue() if capsys is None else capsys.readouterr().err


KILLER = """
import os, signal
from lightning import pytorch as pl

class KillAt(pl.Callback):
    '''Sends ``sig`` to this process during step ``step`` (0-based), before its optimizer update (on every rank,
    or on ``rank`` only).'''
    def __init__(self, step: int, sig: str = "SIGKILL", rank: int | None = None) -> None:
        self.step, self.sig, self.rank = step, sig, rank
        self.sent = False
    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.rank is not None and trainer.global_rank != self.rank:
            return
        if trainer.global_step == self.step and not self.sent:
            self.sent = True
            os.kill(os.getpid(), getattr(signal, self.sig))

class SlowWrite(pl.Callback):
    '''The checkpoint of global step ``step`` is written half, then hangs (until the process is killed): a write
    in flight, on whichever thread writes it.'''
    def __init__(self, step: int) -> None:
        self.step = step
    def setup(self, trainer, pl_module, stage) -> None:
        import io, time, torch
        save = torch.save
        def slow(obj, f, *args, **kwargs):
            if not (isinstance(obj, dict) and obj.get("global_step") == self.step):
                return save(obj, f, *args, **kwargs)
            buffer = io.BytesIO()
            save(obj, buffer, *args, **kwargs)
            f.write(buffer.getvalue()[: buffer.tell() // 2])
            f.flush()
            time.sleep(600)
        torch.save = slow

class SignalInValidation(pl.Callback):
    '''SIGTERM after the first validation batch of epoch ``epoch`` (not the sanity check).'''
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking and trainer.current_epoch == self.epoch and batch_idx == 0:
            os.kill(os.getpid(), signal.SIGTERM)
"""


@pytest.fixture
def killer(tmp_path) -> dict:
    """KILLER importable by a run started with this environment (``+callbacks.kill._target_=killer.KillAt``)."""
    (tmp_path / "killer.py").write_text(textwrap.dedent(KILLER))
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
