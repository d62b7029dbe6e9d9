"""What the benchmark scripts share when they write BENCHMARKS.md: replacing one of its
sections in place, and a table row of command timings."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

BENCH_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def replace_section(heading: str, text: str, path: Path = BENCH_MD) -> None:
    """Put `text` (starting with its "## heading" line) in place of the section `## heading`
    of `path` (up to the next "## " heading), or append it when there is none."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(old):
        new = pattern.sub(lambda _: text.rstrip("\n") + "\n\n", old)
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new)


def timing_row(label: str, wall: list[float], cpu: list[float], target: str) -> str:
    """A Markdown row: label with the run count, median / min / max wall seconds, median CPU
    seconds and the target."""
    return (
        f"| {label}, {len(wall)} runs | {statistics.median(wall):.2f} s | {min(wall):.2f} s "
        f"| {max(wall):.2f} s | {statistics.median(cpu):.2f} s | {target} |\n"
    )
