"""Progress of a long phase: a tqdm bar on a terminal, one summary line in a log.

`dvc repro > log` must not fill the log with carriage-return frames, so a bar is drawn only
when stderr is a terminal (tqdm's `disable=None`); elsewhere the phase ends with one line,
"clean pass 1: 8000 lines in 31.2 s". Every progress report in hrpred goes through `Bar`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def on_terminal() -> bool:
    """Whether stderr is a terminal (where a bar may be drawn)."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


class Bar:
    """A phase's progress counter: `update(n)`, `close()` (or a `with` block).

    `enabled=False` silences it (tests, non-main ranks); `summary=False` leaves out the log
    line (the caller prints its own line for the phase).
    """

    def __init__(
        self,
        desc: str,
        unit: str,
        total: int | None = None,
        initial: int = 0,
        enabled: bool = True,
        leave: bool = True,
        summary: bool = True,
    ) -> None:
        self.desc, self.unit, self.count = desc, unit.strip(), initial
        self.started = time.perf_counter()
        self.log = enabled and summary and not on_terminal()
        self.closed = False
        self._bar = tqdm(
            total=total,
            initial=initial,
            desc=desc,
            unit=f" {self.unit}",
            file=sys.stderr,
            leave=leave,
            dynamic_ncols=True,
            disable=None if enabled else True,  # None: off when stderr is not a terminal
        )

    def update(self, n: int = 1) -> None:
        self.count += n
        self._bar.update(n)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._bar.close()
        if self.log:
            seconds = time.perf_counter() - self.started
            print(f"{self.desc}: {self.count} {self.unit} in {seconds:.1f} s", file=sys.stderr)

    def __enter__(self) -> Bar:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def track(items: Iterable[T], desc: str, unit: str, total: int | None = None) -> Iterator[T]:
    """`items` one by one, counted on a `Bar` that is removed (terminal) when they end."""
    with Bar(desc, unit, total=total, leave=False) as bar:
        for item in items:
            yield item
            bar.update(1)


def write(line: str) -> None:
    """A line on stderr that does not break a bar being drawn."""
    tqdm.write(line, file=sys.stderr)
