"""The package's error type and the one wrapper that turns it into a one-line exit message.

Library code raises `HrpredError` (or a subclass) with a message that says what is wrong and
what to do ("data/features/index.parquet not found: run `dvc repro featurize` first"). Stage
scripts and the command line call `stage_main`, which prints that message on one line,
prefixed with the stage's name, and exits non-zero; any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
EXIT_ERROR = 2  # exit status of the `hrpred` command after a one-line error


class HrpredError(Exception):
    """A failure the user can act on; the message is one line."""


def one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, else its type's name."""
    text = str(exc).strip()
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return first or type(exc).__name__


def stage_main(stage: str, fn: Callable[[], T]) -> T:
    """Run `fn`; an `HrpredError` becomes `SystemExit("<stage>: <message>")`."""
    try:
        return fn()
    except HrpredError as exc:
        raise SystemExit(f"{stage}: {exc}") from None
