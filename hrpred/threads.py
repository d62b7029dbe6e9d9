"""How the model's CPU work uses the cores: torch's thread count, batches predicted in parts on
Python threads, and freed buffers kept for reuse. Shared by training (`hrpred.train.loop`),
batch inference (`hrpred.model.predict`) and evaluate.

On a shared 2-core machine a torch thread team spins at its barriers whenever another job
holds a core (BENCHMARKS.md "Training": 2 torch threads ran 2-36x slower there), so the stages
run torch on 1 thread and use the second core by splitting an inference batch into contiguous
parts predicted at once in Python threads (torch releases the GIL inside its ops). The rows of
a batch are independent, so the parts give the batch's values.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar

import numpy as np
import torch

KEEP_FREED_BYTES = 256 << 20  # freed buffers up to this size stay in the process (glibc)

_PREDICT_PARTS: ContextVar[int] = ContextVar("predict_parts", default=1)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's CPU threads set to `n` inside (0: left as they are), restored after.

    The stages train on 1 torch thread (train.num_threads) and validate and evaluate on 1 per
    part of a batch (`predict_parts`, train.val_threads): the results are the same on any core
    count (more threads sum in another order), and no thread team spins waiting for a core
    that another job holds."""
    prev = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


@contextmanager
def predict_parts(n: int) -> Iterator[None]:
    """Inside, `hrpred.model.predict` on the CPU splits each batch into `n` contiguous parts
    (`part_bounds`) and runs them at once in `n` threads, each torch op on the calling
    thread's torch threads (1 in the stages). The parts give the batch's values, byte for
    byte without a history context and within a float32 rounding with one (the context
    encoder's matrix products round by batch size; tests/test_model.py)."""
    token = _PREDICT_PARTS.set(max(1, int(n)))
    try:
        yield
    finally:
        _PREDICT_PARTS.reset(token)


def current_parts() -> int:
    """The parts `predict_parts` asks for here (1 outside it)."""
    return max(1, _PREDICT_PARTS.get())


def part_bounds(start: int, end: int, parts: int) -> list[tuple[int, int]]:
    """Rows [start, end) cut into at most `parts` contiguous, non-empty [lo, hi) pieces,
    sized as `np.array_split` sizes them (the first pieces one row longer)."""
    pieces = np.array_split(np.arange(start, end), max(1, min(parts, end - start)))
    return [(int(p[0]), int(p[-1]) + 1) for p in pieces if p.size]


def part_pool(parts: int) -> AbstractContextManager[ThreadPoolExecutor | None]:
    """A pool of `parts` threads for `run_parts` (None, nothing started, for 1 part)."""
    return ThreadPoolExecutor(parts) if parts > 1 else nullcontext()


def run_parts(
    fn: Callable[[int, int], None],
    bounds: Sequence[tuple[int, int]],
    pool: ThreadPoolExecutor | None,
) -> None:
    """fn(lo, hi) for every piece, at once on `pool`'s threads (no pool or one piece: one
    after the other on this thread); a piece's exception is raised here."""
    if pool is None or len(bounds) == 1:
        for lo, hi in bounds:
            fn(lo, hi)
        return
    list(pool.map(lambda b: fn(*b), bounds))  # list(): raise a worker's error


def keep_freed_buffers() -> bool:
    """Let glibc's malloc keep freed buffers up to KEEP_FREED_BYTES for reuse (True when set).

    By default glibc maps each large tensor buffer afresh and unmaps it when freed, so every
    batch pays page faults for its zeroed pages: 1.1 million minor faults, 3-4 s of system time
    in the first training epoch and 0.6 s in every validation on 2 cores (BENCHMARKS.md
    "Training"). Process-wide and never undone; only where the memory comes from changes, not a
    value computed (models/model.pt is byte-identical). False elsewhere (not Linux, not glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc: nothing to set
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(
        mallopt(m_mmap_threshold, KEEP_FREED_BYTES)
        and mallopt(m_trim_threshold, 4 * KEEP_FREED_BYTES)
    )
