"""What the study drivers (ablations, figure1, lrn_cifar10) share: the CIFAR-10 stores from ../shared/data, made
once (``store``; ``python experiments/cifar10.py SIZE`` makes one by hand), and their runs of train.py
(``launch``, ``park``, ``unpark``). A module, not an entry point.

1. Unpack ``../shared/data/cifar10-jpg.tar.gz`` into $ALEXNET_LIT_CACHE/cifar10-jpg (default ~/.cache/alexnet-lit),
   with ``val`` naming the test split (alexnet-prepare's splits are train and val; CIFAR-10's are train and test).
2. ``per_class=N``: a folder of links to the first N training files of each class (sorted names), the whole test
   split; its store's mean image is that of those N x 10 images, as cuda-convnet's was of the batches it trained on.
3. ``alexnet-prepare size=S format=raw``: the store with its mean image and RGB PCA; skipped when its manifest says
   complete. Raw, as every committed study was measured (``fmt="jpeg"``: the JPEG store of the same images, for
   experiments/jpeg_store).

``launch`` starts one train.py run in its own folder, resumed from its last checkpoint when it has one: what the
study drivers (figure1, lrn_cifar10) share. ``park`` / ``unpark``: logs/ is not committed, so a study that must stop
before a run ends parks that run (its newest checkpoint, CSV, run.json and .hydra/, about 1.3 MB for Figure 1's net)
in the experiment's folder, to be committed; the next session, on any machine, unparks it and resumes it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARBALL = ROOT.parent / "shared" / "data" / "cifar10-jpg.tar.gz"
BIN = Path(sys.executable).parent


def user_error(message: str) -> None:
    """A mistake in what the user gave (an option, a missing file): one ``error:`` line on stderr, exit 2, before
    any work, as every entry point of the package does. A run that failed exits 1 instead."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def cache() -> Path:
    return Path(os.environ.get("ALEXNET_LIT_CACHE", Path.home() / ".cache" / "alexnet-lit"))


def unpacked() -> Path:
    raw = cache() / "cifar10-jpg"
    if not (raw / "train").is_dir():
        if not TARBALL.is_file():
            user_error(f"{TARBALL} not found: the experiments read CIFAR-10 from ../shared/data (see its README)")
        raw.mkdir(parents=True, exist_ok=True)
        with tarfile.open(TARBALL) as tar:
            tar.extractall(raw, filter="data")
    if not (raw / "val").exists():
        (raw / "val").symlink_to("test")
    return raw


def subset(raw: Path, per_class: int) -> Path:
    out = cache() / f"cifar10-jpg-{per_class}pc"
    if not (out / "val").exists():
        for cls in sorted(p for p in (raw / "train").iterdir() if p.is_dir()):
            files = sorted(cls.iterdir())
            if len(files) < per_class:
                user_error(f"per_class={per_class}: {cls} has {len(files)} images")
            (out / "train" / cls.name).mkdir(parents=True, exist_ok=True)
            for f in files[:per_class]:
                link = out / "train" / cls.name / f.name
                if not link.exists():
                    link.symlink_to(f)
        (out / "val").symlink_to(raw / "test")
    return out


def store(size: int, per_class: int | None = None, fmt: str = "raw", quality: int = 90) -> Path:
    """The store's folder (data.root), made when absent or incomplete."""
    raw = unpacked()
    src = subset(raw, per_class) if per_class else raw
    out = cache() / (f"cifar10-{size}" + (f"-{per_class}pc" if per_class else "") +
                     (f"-jpeg{quality}" if fmt == "jpeg" else ""))
    manifest = out / "manifest.json"
    if '"complete": true' not in (manifest.read_text() if manifest.is_file() else ""):
        t = time.monotonic()
        cmd = [str(BIN / "alexnet-prepare"), f"root={src}", f"out_dir={out}", f"size={size}", "custom_classes=true",
               f"format={fmt}", *([f"quality={quality}"] if fmt == "jpeg" else [])]
        print(f"== prepare: {' '.join(cmd)}", flush=True)
        if subprocess.call(cmd, cwd=ROOT) != 0:
            sys.exit(f"error: alexnet-prepare failed for {out}")
        print(f"== prepare: {(time.monotonic() - t) / 60:.1f} min", flush=True)
    return out


def tag(extra: str) -> str:
    """A run id suffix for runs with extra overrides (a stable hash): they never share a study run's folder."""
    return "-x" + hashlib.sha1(extra.encode()).hexdigest()[:8] if extra.strip() else ""


def folder(log_dir: str | Path, experiment: str, run_id: str) -> Path:
    return Path(log_dir) / experiment / "runs" / run_id


def test_errors(run_dir: Path, keys: tuple[str, ...]) -> dict[str, float]:
    """The run's logged ``keys`` (test errors, fractions) from its metrics.csv, in percent; {} before it has one."""
    path = run_dir / "csv" / "metrics.csv"
    if not path.is_file():
        return {}
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {k: 100 * float(r[k]) for r in rows for k in keys if r.get(k)}


def record(run_dir: Path) -> dict:
    """run.json: status (finished, failed, interrupted, running) and, for a failed run, its reason."""
    path = run_dir / "run.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def park(log_dir: str | Path, experiment: str, dest: Path) -> list[str]:
    """Copy every unfinished run of ``experiment`` that has a checkpoint into ``dest``/<run id> (the newest
    checkpoint only); returns their ids. Finished runs are in results.json already."""
    parked = []
    for run_dir in sorted((Path(log_dir) / experiment / "runs").glob("*")):
        saved = sorted((run_dir / "checkpoints").glob("*.ckpt"), key=lambda f: f.stat().st_mtime_ns)
        if record(run_dir).get("status") == "finished" or not saved:
            continue
        out = dest / run_dir.name
        shutil.rmtree(out, ignore_errors=True)
        (out / "checkpoints").mkdir(parents=True)
        shutil.copy2(saved[-1], out / "checkpoints" / saved[-1].name)
        for part in ("csv", ".hydra"):
            if (run_dir / part).is_dir():
                shutil.copytree(run_dir / part, out / part)
        shutil.copy2(run_dir / "run.json", out / "run.json")
        parked.append(run_dir.name)
    return parked


def unpark(src: Path, log_dir: str | Path, experiment: str) -> list[str]:
    """Parked runs back into logs/ where their folder is missing (resumed from there by ``launch``)."""
    restored = []
    for parked in sorted(src.glob("*")) if src.is_dir() else []:
        run_dir = folder(log_dir, experiment, parked.name)
        if not run_dir.exists():
            shutil.copytree(parked, run_dir)
            restored.append(parked.name)
    return restored


def launch(experiment: str, run_id: str, overrides: list[str], log_dir: str | Path, note: str = "") -> int:
    """``train.py +experiment=E run_id=R`` (and ``ckpt_path=last``, the newest, when its folder has a checkpoint);
    the exit code (0 finished, 1 failed, 2 a user error, 130/143 stopped)."""
    saved = folder(log_dir, experiment, run_id) / "checkpoints"  # last.ckpt, interrupted.ckpt (a SIGTERM), step.ckpt
    resume = ["ckpt_path=last"] if any(saved.glob("*.ckpt")) else []
    cmd = [sys.executable, "train.py", f"+experiment={experiment}", f"run_id={run_id}", f"paths.log_dir={log_dir}",
           *overrides, *resume]
    print(f"== {run_id}{note}" + (" (resumed)" if resume else ""), flush=True)
    # SIGTERM to the study reaches the run (it checkpoints and exits 143); Ctrl-C reaches both from the terminal,
    # so the study waits for the run to stop. A stopped run stops the study, with its code: it resumes from there.
    proc = subprocess.Popen(cmd, cwd=ROOT)
    before = {signal.SIGTERM: signal.signal(signal.SIGTERM, lambda s, f: proc.send_signal(s)),
              signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN)}
    try:
        code = proc.wait()
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
    if code in (130, 143):
        print(f"== {run_id}: stopped ({'SIGTERM' if code == 143 else 'Ctrl-C'}); the study resumes where it was",
              flush=True)
        sys.exit(code)
    return code
