"""The memory-bound tests measure the child, not the pytest process that started it."""

import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.procmem import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]


def test_a_child_does_not_inherit_its_parents_peak():
    ballast = np.ones(400 * 2**20 // 8)  # 400 MiB touched in this process
    assert peak_rss_mb() >= 400
    code = "from tests.procmem import peak_rss_mb; print(peak_rss_mb())"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert float(out) < 200, out  # ru_maxrss would say >= 400 here on Linux
    del ballast
