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


class HrpredError(Exception):
    """A failure the user can act on; the message is one line."""


def stage_main(stage: str, fn: Callable[[], T]) -> T:
    """Run `fn`; an `HrpredError` becomes `SystemExit("<stage>: <message>")`."""
    try:
        return fn()
    except HrpredError as exc:
        raise SystemExit(f"{stage}: {exc}") from None
