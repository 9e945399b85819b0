"""``run.json`` in every run folder: what state the run is in, for alexnet-report and for people.

    {"status": "running", "started": ..., "pid": ..., "host": ...}            written when training starts
    {"status": "finished" | "failed" | "interrupted", "wall_s": ..., ...}   written when it ends

A run killed without a chance to write (SIGKILL, a lost node) stays ``running``; ``state`` tells that apart from
one still going by its process (same host, pid gone: ``killed``). A resumed run adds its time to ``wall_s``
(``segments`` counts the starts). Written atomically by rank 0 only.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

NAME = "run.json"


def read(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(run_dir) / NAME
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def write(run_dir: str | os.PathLike, record: dict[str, Any]) -> None:
    path = Path(run_dir) / NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{NAME}.tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    os.replace(tmp, path)


class RunRecord:
    """``start()`` when training starts, ``end(status, metrics)`` when it ends, on rank 0."""

    def __init__(self, run_dir: str | os.PathLike, enabled: bool = True) -> None:
        self.run_dir, self.enabled = Path(run_dir), enabled
        self.t0 = time.monotonic()
        self.before = read(run_dir) or {}

    def start(self) -> None:
        if not self.enabled:
            return
        write(self.run_dir, {"status": "running", "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                             "pid": os.getpid(), "host": socket.gethostname(),
                             "segments": int(self.before.get("segments", 0)) + 1,
                             "wall_s": float(self.before.get("wall_s", 0.0))})

    def end(self, status: str, metrics: dict[str, float] | None = None, reason: str = "") -> None:
        if not self.enabled:
            return
        record = read(self.run_dir) or {}
        record.update(status=status, ended=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                      wall_s=float(self.before.get("wall_s", 0.0)) + time.monotonic() - self.t0)
        if reason:
            record["reason"] = reason
        if metrics is not None:
            record["metrics"] = {k: v for k, v in sorted(metrics.items())}
        write(self.run_dir, record)


def state(record: dict[str, Any] | None) -> str:
    """finished, failed, interrupted, running, killed (a ``running`` record whose process is gone) or missing."""
    if record is None:
        return "missing"
    status = record.get("status", "missing")
    if status == "running" and record.get("host") == socket.gethostname() and not _alive(int(record.get("pid", 0))):
        return "killed"
    return status


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
