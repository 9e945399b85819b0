"""make check-gpu (experiments/check_gpu.py): on a machine without CUDA one error line and exit 2; its checks are
the same functions on the CPU (the quickstart is make train's, the speed is make bench-train's)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
import check_gpu  # noqa: E402


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: make check-gpu runs for real")
def test_without_a_gpu_it_says_so_in_one_line_and_exits_2():
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "check_gpu.py")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: make check-gpu needs a CUDA GPU") and proc.stderr.count("\n") == 1


@pytest.mark.parametrize("name", ["ten_crop", "compile", "syncs", "lrn", "jpeg"])
def test_each_check_passes_on_the_cpu(name):
    assert check_gpu.CHECKS[name]("cpu")
