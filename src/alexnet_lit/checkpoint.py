"""Reading a checkpoint the user names (``ckpt_path``): one clear error naming the file and what to do.

    python train.py ckpt_path=logs/paper/runs/<time>/checkpoints/last.ckpt     # resume
    alexnet-eval ckpt_path=.../best-epoch042.ckpt                              # test

Always ``torch.load(weights_only=True)``: our checkpoints hold only plain containers and tensors. A file that a
safe load refuses is reported as such; torch's advice to retry with ``weights_only=False`` (which runs whatever
code the file contains) is never passed on. ``mmap=True`` keeps the check cheap for the full-size model (the
tensors are not read until used).
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from alexnet_lit.config import ConfigError, ModelConfig, NetConfig, build, plain


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
    return state


def network_differences(state: dict[str, Any], model: Any) -> str:
    """The network keys (NetConfig) where a checkpoint and the composed ``model`` config differ ('' if none)."""
    saved = plain(build(ModelConfig, state["hyper_parameters"], "checkpoint"))
    now = plain(build(ModelConfig, plain(model), "model"))
    keys = [f for f in NetConfig.__dataclass_fields__ if saved.get(f) != now.get(f)]
    return ", ".join(f"model.{k}={saved.get(k)} (checkpoint) vs {now.get(k)} (now)" for k in keys)


def check_resume(path: str, model: Any) -> dict[str, Any]:
    """A checkpoint to resume from: readable, and of the network the config builds."""
    state = read(path)
    if differences := network_differences(state, model):
        raise ConfigError(f"ckpt_path={path} holds a different network: {differences}; resume with the "
                          f"checkpoint's model settings")
    return state
