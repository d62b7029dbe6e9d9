"""hrpred.threads: batch parts, and freed buffers kept for reuse."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from hrpred.threads import part_bounds, run_parts


@pytest.mark.parametrize(("n", "parts"), [(256, 2), (255, 2), (162, 3), (7, 4), (3, 5), (1, 2)])
def test_part_bounds_cut_rows_as_torch_tensor_split(n: int, parts: int) -> None:
    """Contiguous, non-empty pieces covering [start, end) in order, sized as torch's
    tensor_split sizes them (an independent implementation of the same rule)."""
    start = 1000
    got = part_bounds(start, start + n, parts)
    want = [p for p in torch.tensor_split(torch.arange(start, start + n), parts) if len(p)]
    assert got == [(int(p[0]), int(p[-1]) + 1) for p in want]
    assert got[0][0] == start and got[-1][1] == start + n
    assert all(hi == lo2 for (_, hi), (lo2, _) in zip(got, got[1:], strict=False))


def test_run_parts_runs_every_piece_once_and_raises_a_pieces_error() -> None:
    bounds = part_bounds(0, 10, 3)
    seen: list[tuple[int, int]] = []
    with ThreadPoolExecutor(3) as pool:
        run_parts(lambda lo, hi: seen.append((lo, hi)), bounds, pool)
        assert sorted(seen) == bounds

        def fail(lo: int, hi: int) -> None:
            if lo > 0:
                raise ValueError(f"piece {lo}")

        with pytest.raises(ValueError, match="piece"):
            run_parts(fail, bounds, pool)
    seen.clear()
    run_parts(lambda lo, hi: seen.append((lo, hi)), bounds, None)  # no pool: in order
    assert seen == bounds


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_kept_freed_buffers_are_reused_without_page_faults() -> None:
    """After keep_freed_buffers(), batches of 33-48 MB tensors freed and allocated again come
    mostly from the process's heap: under a tenth of the page faults of glibc's default, which
    maps each buffer above 32 MB afresh and faults in all its pages again (514,610 faults for
    these 10 batches). One buffer's reuse alone depends on the heap's layout (torch's aligned
    allocations do not always fit a freed chunk of their own size), so a batch of sizes is
    measured. Fresh interpreters: in a long-lived one with many threads, glibc may have moved
    the main thread to a thread arena, whose heaps (64 MB at most) map such buffers anyway."""
    import subprocess

    code = """
import resource, sys, torch
from hrpred.threads import keep_freed_buffers
def batch():
    ts = [torch.empty(mb << 17, dtype=torch.float64).fill_(1.0) for mb in (40, 36, 44, 48, 33)]
    del ts
kept = keep_freed_buffers() if sys.argv[1] == "keep" else True
batch()  # the heap grows
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    batch()
print(int(kept), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    runs = {}
    for mode in ("keep", "default"):
        out = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True,
                             env=env, check=True, timeout=120)  # fmt: skip
        runs[mode] = [int(v) for v in out.stdout.split()]
    if not runs["keep"][0]:
        pytest.skip("not glibc")
    assert runs["default"][1] > 0.9 * 10 * 201 * 256  # the default faults in every 4 kB page
    assert runs["keep"][1] < 0.1 * runs["default"][1]
