"""Folders a run writes to: checked by a real probe before any work (paths.log_dir, data.cache_dir).

A real probe, not ``os.access``: root passes access checks even where the file system refuses writes (a
read-only mount), and jobs on clusters often run as root in containers.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from alexnet_lit.config import ConfigError


def check_writable(path: str | os.PathLike, key: str, need_bytes: int = 0) -> None:
    """``path`` (made later if absent) can take files and has ``need_bytes`` free; the probe leaves nothing."""
    p = Path(path).expanduser().absolute()
    existing = next(a for a in (p, *p.parents) if a.exists())
    if not existing.is_dir():
        raise ConfigError(f"{key}={path}: {existing} is a file, not a folder; point it to a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".alexnet-lit-probe-", dir=existing))
    except OSError as e:
        raise ConfigError(f"{key}={path}: cannot write in {existing} ({e.strerror}); point it to a writable "
                          f"folder") from None
    free = shutil.disk_usage(existing).free
    if free < need_bytes:
        raise ConfigError(f"{key}={path}: {free / 2**20:,.0f} MiB free in {existing}, the run needs about "
                          f"{need_bytes / 2**20:,.0f} MiB for its checkpoints; free space or point it elsewhere")
