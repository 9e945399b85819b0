"""Reading a checkpoint the user names (``ckpt_path``): one clear error naming the file and what to do; writing
one so that a kill or a full disk during the write leaves the previous file intact (AtomicCheckpointIO), off the
training thread (QueuedCheckpointIO).

    python train.py ckpt_path=logs/paper/runs/<time>/checkpoints/last.ckpt     # resume
    alexnet-eval ckpt_path=.../best-epoch042.ckpt                              # test

Always ``torch.load(weights_only=True)``: our checkpoints hold only plain containers and tensors. A file that a
safe load refuses is reported as such; torch's advice to retry with ``weights_only=False`` (which runs whatever
code the file contains) is never passed on. ``mmap=True`` keeps the check cheap for the full-size model (the
tensors are not read until used).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import AsyncCheckpointIO, TorchCheckpointIO
from torch.utils._pytree import tree_flatten, tree_unflatten

from alexnet_lit.config import ConfigError, ModelConfig, NetConfig, build, plain
from alexnet_lit.signals import RunFailed

TEMPORARY = ".tmp-"  # .<name>.tmp-<pid>: a checkpoint being written, in the folder it is written to
DATA_STATE = "AlexNetDataModule"  # where Lightning keeps the data module's state_dict (its class name)


class AtomicCheckpointIO(TorchCheckpointIO):
    """A checkpoint is written to a temporary file in its own folder, synced, then renamed over the old one: a
    rename within one file system is atomic, so a reader (or a resume after a kill) sees the old file or the new
    one, never a part. Lightning's own writer stages the file in a temporary folder of its choosing and moves it,
    which is a copy (not atomic) when the run folder is on another file system (NFS, Lustre, tmpfs) and leaks a
    checkpoint-sized file on every kill."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}{TEMPORARY}{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException as e:
            tmp.unlink(missing_ok=True)
            if isinstance(e, OSError):
                raise RunFailed(f"could not write {path} ({e.strerror or e}); the checkpoint that was there is intact: "
                                f"free space in {path.parent} and resume with ckpt_path=last") from None
            raise
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename itself survives a crash of the node
        finally:
            os.close(fd)


class QueuedCheckpointIO(AsyncCheckpointIO):
    """Lightning's AsyncCheckpointIO (the file written by one worker thread; a write's error raised at the next
    save or at the end of fit, whose teardown waits for the writes) with two changes:
    1. The snapshot of the tensors (the training thread must copy them: the next step changes them) goes into
       buffers kept from the previous checkpoint when its write is done (``copy_``), not into fresh memory
       (``clone``): measured here for the paper's net (~465 MiB with the momentum), 0.7-1.5 s to clone against
       0.01-0.1 s to copy, the difference being the page faults of fresh memory.
    2. Removals are queued behind the writes: ModelCheckpoint deletes the previous best right after saving the
       new one, so a kill between the two would otherwise leave no best checkpoint at all.
    ``make bench-train`` prints the stall on the training thread against the write."""

    _buffers: list[Any] | None = None
    _last: Any = None

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        self._ensure_setup()
        assert self._executor is not None
        snapshot = self._snapshot(checkpoint)

        def write() -> None:
            try:
                self.checkpoint_io.save_checkpoint(snapshot, path, storage_options=storage_options)
            except BaseException as e:  # raised on the training thread at the next save or at teardown
                self._error = e

        self._last = self._executor.submit(write)
        if self._error:
            raise self._error

    def _snapshot(self, checkpoint: dict[str, Any]) -> dict[str, Any]:
        leaves, spec = tree_flatten(checkpoint)
        tensors = [t for t in leaves if isinstance(t, torch.Tensor)]
        idle = self._last is None or self._last.done()  # the previous write has finished reading its buffers
        same = self._buffers is not None and len(self._buffers) == len(tensors) and all(
            (b.shape, b.dtype, b.device) == (t.shape, t.dtype, t.device) for b, t in zip(self._buffers, tensors))
        if idle and same:
            for b, t in zip(self._buffers, tensors):
                b.copy_(t.detach())
        else:
            self._buffers = [t.detach().clone() for t in tensors]
        copies = iter(self._buffers)
        return tree_unflatten([next(copies) if isinstance(t, torch.Tensor) else t for t in leaves], spec)

    def remove_checkpoint(self, path: Any) -> None:
        def remove() -> None:
            try:
                self.checkpoint_io.remove_checkpoint(path)
            except BaseException as e:
                self._error = e

        self._ensure_setup()
        assert self._executor is not None
        self._executor.submit(remove)


def newest(dirpath: str | os.PathLike) -> str | None:
    """The newest complete checkpoint in a folder (step.ckpt, last.ckpt, interrupted.ckpt, best-*.ckpt)."""
    found = [p for p in Path(dirpath).glob("*.ckpt") if p.is_file()] if os.path.isdir(dirpath) else []
    return str(max(found, key=lambda p: p.stat().st_mtime_ns)) if found else None


def requeued() -> bool:
    """A SLURM job started again (requeued after a time-limit warning or a preemption)."""
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0


def resume_path(ckpt_path: str | None, output_dir: str) -> str | None:
    """What ``ckpt_path`` means for this run: ``last`` is the newest checkpoint of the run folder (absent: an
    error naming the folder, never a fresh start); unset in a requeued SLURM job, the same if there is one."""
    folder = Path(output_dir) / "checkpoints"
    if ckpt_path == "last" or (ckpt_path is None and requeued()):
        found = newest(folder)
        if found is None and ckpt_path == "last":
            runs = sorted(p.name for p in Path(output_dir).parent.glob("*") if (p / "checkpoints").is_dir())
            listed = f" (runs with checkpoints there: {', '.join(runs[-5:])})" if runs else ""
            raise ConfigError(f"ckpt_path=last: no checkpoint in {folder}; run_id=NAME names the run to resume"
                              f"{listed}")
        return found
    return ckpt_path


def remove_temporaries(dirpath: str) -> list[str]:
    """Temporary files of writes that a kill interrupted (never complete checkpoints)."""
    found = [str(p) for p in Path(dirpath).glob(f".*.ckpt{TEMPORARY}*")] if os.path.isdir(dirpath) else []
    for p in found:
        Path(p).unlink(missing_ok=True)
    return found


def read(path: str, key: str = "ckpt_path") -> dict[str, Any]:
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(f"{key}={path}: no such file")
    if p.is_dir():
        raise ConfigError(f"{key}={path} is a folder: give a .ckpt file (e.g. {p}/checkpoints/last.ckpt)")
    if p.stat().st_size == 0:
        raise ConfigError(f"{key}={path} is empty (0 bytes: a save that did not finish); use another checkpoint")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as e:
        detail = next((line for line in str(e).splitlines() if "WeightsUnpickler error" in line), "unsafe objects")
        raise ConfigError(f"{key}={path} holds objects a safe load refuses ({detail.strip()}); alexnet-lit "
                          f"checkpoints hold only tensors and plain values: was it written by another program?"
                          ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        reason = (str(e).splitlines() or [type(e).__name__])[0][:160]
        raise ConfigError(f"{key}={path} is not a readable checkpoint (truncated, or not a torch file: {reason}); "
                          f"use another checkpoint") from None
    if not isinstance(state, dict) or "state_dict" not in state or "hyper_parameters" not in state:
        raise ConfigError(f"{key}={path} is a torch file but not an alexnet-lit checkpoint (no state_dict and "
                          f"hyper_parameters)")
    return upgrade(state)


def upgrade(state: dict[str, Any]) -> dict[str, Any]:
    """Checkpoints of earlier versions in today's layout, in place (every reader and Lightning's resume call it).
    Before 2026-12-03: ``init=paper_scaled`` (now init=paper with init_full_size_gain, the same weights), the
    input contract at the top level (now in the data module's state, data/contract.py) and ``lr_reductions``
    beside the plateau schedule's state (now in it)."""
    hp = state.get("hyper_parameters", {})
    if hp.get("init") == "paper_scaled":
        hp["init"], hp["init_full_size_gain"] = "paper", True
    if "input_contract" in state:
        state.setdefault(DATA_STATE, {}).setdefault("input_contract", state.pop("input_contract"))
    if "lr_reductions" in state:  # the plateau schedule's count, now in its own state (plateau.Plateau)
        done = int(state.pop("lr_reductions"))
        for schedule in state.get("lr_schedulers", []):
            if "patience" in schedule:
                schedule.setdefault("reductions", done)
    return state


HOW_NOT_WHAT = {"tower_conv"}  # how the network computes, not which network: may change on resume


def network_differences(state: dict[str, Any], model: Any) -> str:
    """The network keys (NetConfig) where a checkpoint and the composed ``model`` config differ ('' if none)."""
    saved = plain(build(ModelConfig, state["hyper_parameters"], "checkpoint"))
    now = plain(build(ModelConfig, plain(model), "model"))
    keys = [f for f in NetConfig.__dataclass_fields__ if saved.get(f) != now.get(f) and f not in HOW_NOT_WHAT]
    return ", ".join(f"model.{k}={saved.get(k)} (checkpoint) vs {now.get(k)} (now)" for k in keys)


def saved_seed(state: dict[str, Any]) -> int | None:
    seed = state.get(DATA_STATE, {}).get("seed")
    return None if seed is None else int(seed)


def check_resume(path: str, model: Any, seed: int | None = None) -> dict[str, Any]:
    """A checkpoint to resume from: readable, of the network the config builds, with the same optimizer rule and
    seed (other optimizer and schedule settings may change: AlexNetModule applies them and says so)."""
    state = read(path)
    if differences := network_differences(state, model):
        raise ConfigError(f"ckpt_path={path} holds a different network: {differences}; resume with the "
                          f"checkpoint's model settings")
    saved_rule = state["hyper_parameters"].get("optimizer", {}).get("name")
    rule = plain(model).get("optimizer", {}).get("name")
    saved_rule, rule = getattr(saved_rule, "value", saved_rule), getattr(rule, "value", rule)
    if saved_rule is not None and rule is not None and saved_rule != rule:
        raise ConfigError(f"ckpt_path={path} was trained with model.optimizer.name={saved_rule}, not {rule}: the "
                          f"two rules keep different momentum buffers; resume with model.optimizer.name={saved_rule}")
    if seed is not None and saved_seed(state) not in (None, seed):
        raise ConfigError(f"ckpt_path={path} was trained with seed={saved_seed(state)}, not {seed}: the data order "
                          f"and the augmentation follow the seed, so an exact resume needs the same one; resume "
                          f"with seed={saved_seed(state)} (or seed=null, which takes the checkpoint's)")
    return state
