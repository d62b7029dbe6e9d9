"""Ordered map over worker processes with a bounded number of tasks in flight.

`multiprocessing.Pool.imap` reads its whole input ahead, which would pull a 5 GB file
into memory; here at most `max_inflight` tasks exist at any time, and results come back
in submission order, so the output does not depend on the number of workers. One pool
serves several maps (the clean stage's two passes) so workers start only once.
"""

from __future__ import annotations

import multiprocessing as mp
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


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
                workers, mp_context=ctx, initializer=initializer, initargs=initargs
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
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

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
