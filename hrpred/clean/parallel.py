"""Ordered map over worker processes with a bounded number of tasks in flight.

`multiprocessing.Pool.imap` reads its whole input ahead, which would pull a 5 GB file
into memory; here at most `max_inflight` tasks exist at any time, and results come back
in submission order, so the output does not depend on the number of workers. One pool
serves several maps (the clean stage's two passes) so workers start only once.

Interruption: inside `stop_on_signals()` SIGTERM and SIGINT raise `Interrupted` in the main
thread, so every `finally` runs; a pool left by an exception terminates its workers at once.
Workers ignore SIGINT (the driver decides) and exit by themselves within a second when the
driver dies without cleaning up (SIGKILL), so no worker outlives it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any, TypeVar

from hrpred.errors import HrpredError

T = TypeVar("T")
R = TypeVar("R")

PARENT_POLL_S = 0.5  # how often a worker checks that its driver is still alive


class Interrupted(HrpredError):
    """The stage was stopped by a signal (workers stopped, temporary files removed)."""


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """While inside, SIGTERM and SIGINT raise `Interrupted` (main thread only; elsewhere a
    no-op), so the caller's `finally` blocks stop workers and remove temporary files."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(f"interrupted by {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)  # the driver is gone (SIGKILL): nobody will collect our results


def _start_worker(
    parent: int, initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if initializer is not None:
        initializer(*initargs)


class OrderedPool:
    """`with OrderedPool(workers, init, args) as pool: for r in pool.map(f, tasks): ...`

    With workers <= 1 everything runs in this process (the initializer too).
    """

    def __init__(
        self,
        workers: int,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        max_inflight: int | None = None,
    ) -> None:
        self.workers = workers
        self.limit = max_inflight or 2 * workers + 1
        self._pool: ProcessPoolExecutor | None = None
        if workers > 1:
            ctx = mp.get_context("spawn")  # no fork: safe with pyarrow/BLAS threads
            self._pool = ProcessPoolExecutor(
                workers,
                mp_context=ctx,
                initializer=_start_worker,
                initargs=(os.getpid(), initializer, initargs),
            )
        elif initializer is not None:
            initializer(*initargs)

    def __enter__(self) -> OrderedPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pool is None:
            return
        if exc_type is None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            return
        # Interrupted or failed: do not wait for the chunks in flight.
        processes = list(getattr(self._pool, "_processes", {}).values())
        for p in processes:
            p.terminate()
        self._pool.shutdown(wait=True, cancel_futures=True)
        for p in processes:
            p.join(timeout=5)

    def map(self, func: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        """Yield func(task) for each task, in order."""
        if self._pool is None:
            for task in tasks:
                yield func(task)
            return
        pending: deque[Future[R]] = deque()
        for task in tasks:
            pending.append(self._pool.submit(func, task))
            if len(pending) >= self.limit:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
