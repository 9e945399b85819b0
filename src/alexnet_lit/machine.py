"""What machine a measurement ran on: every benchmark prints it (speed differs by CPU: AMX or not, cores)."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_name() -> str:
    info = Path("/proc/cpuinfo")
    names = [ln.split(":", 1)[1].strip() for ln in info.read_text().splitlines() if ln.startswith("model name")] \
        if info.is_file() else []
    return names[0] if names else (platform.processor() or platform.machine() or "unknown")
