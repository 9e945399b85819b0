"""What machine a measurement ran on: every benchmark prints it (speed differs by CPU: AMX or not, cores)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_name() -> str:
    info = Path("/proc/cpuinfo")
    names = [ln.split(":", 1)[1].strip() for ln in info.read_text().splitlines() if ln.startswith("model name")] \
        if info.is_file() else []
    return names[0] if names else (platform.processor() or platform.machine() or "unknown")


def cpu_flags() -> set[str]:
    """The instruction-set flags of /proc/cpuinfo (empty where there is none)."""
    info = Path("/proc/cpuinfo")
    for line in info.read_text().splitlines() if info.is_file() else []:
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_bf16() -> str:
    """How this CPU computes bf16: ``amx`` (matrix tiles: bf16 autocast ~3x fp32), ``avx512_bf16`` (bf16 dot
    products: ~1.2x), or ``none`` (emulated: slower than fp32)."""
    flags = cpu_flags()
    return "amx" if "amx_bf16" in flags else "avx512_bf16" if "avx512_bf16" in flags else "none"


def cpu_precision() -> str:
    """trainer=cpu's precision: bf16 autocast where the CPU has bf16 instructions (it paid 3x with AMX and 1.18x
    with AVX-512 bf16 alone, measured), fp32 where bf16 would be emulated. ``trainer.precision=...`` overrides."""
    return "32-true" if cpu_bf16() == "none" else "bf16-mixed"


def default_workers() -> int:
    """Worker processes when the config says null (data.num_workers, alexnet-prepare workers): one per core, 8 at
    most."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, 8))
