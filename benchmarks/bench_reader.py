"""Raw reader throughput vs an `ast.literal_eval` loop on the same FitRec lines.

Also times the simulator that writes the file (MB/s for 1 and N worker processes).

    .venv/bin/python benchmarks/bench_reader.py --lines 20000 --sample 1500

`--sample` lines are parsed both ways (literal_eval is ~100x slower, so the whole
file would take minutes); the reader is also timed on the whole file.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import os
import platform
import time
from pathlib import Path

from hrpred.io.raw import iter_raw
from hrpred.params import load_config
from hrpred.simulate import SimConfig, simulate_dataset

ROOT = Path(__file__).resolve().parents[1]
WORK = Path(__file__).resolve().parent / "scratch"


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def simulate(lines: int, workers: int, out: Path) -> tuple[float, int]:
    """params.yaml's simulator at `lines` workouts: seconds and bytes written."""
    cfg = dataclasses.replace(
        load_config(SimConfig, "simulate", ROOT / "params.yaml"),
        n_workouts=lines,
        n_users=max(150, lines // 170),
        workers=workers,
    )
    began = time.perf_counter()
    metrics = simulate_dataset(cfg, out, out.with_suffix(".truth.parquet"), progress=False)
    return time.perf_counter() - began, metrics["bytes"]


def time_reader(path: Path, limit: int | None = None) -> tuple[float, int, int]:
    """Seconds, bytes and workouts for iter_raw over the first `limit` lines."""
    size = 0
    good = 0
    began = time.perf_counter()
    for item in iter_raw(path):
        if limit is not None and item.line > limit:
            break
        good += item.workout is not None
    seconds = time.perf_counter() - began
    with path.open("rb") as f:
        for i, line in enumerate(f):
            if limit is not None and i >= limit:
                break
            size += len(line)
    return seconds, size, good


def time_literal_eval(path: Path, limit: int) -> tuple[float, int, int]:
    """The reference project's way: ast.literal_eval on every line."""
    size = 0
    good = 0
    began = time.perf_counter()
    with path.open("rb") as f:
        for i, line in enumerate(f):
            if i >= limit:
                break
            size += len(line)
            try:
                good += isinstance(ast.literal_eval(line.decode("utf-8").strip()), dict)
            except (SyntaxError, ValueError, UnicodeDecodeError):
                pass
    return time.perf_counter() - began, size, good


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=20000, help="lines to simulate")
    ap.add_argument("--sample", type=int, default=1500, help="lines parsed both ways")
    ap.add_argument("--workers", type=int, default=2, help="simulator processes")
    ap.add_argument("--file", type=Path, help="an existing raw file (skips simulation)")
    args = ap.parse_args()

    print(f"machine: {_machine()}")
    path = args.file
    if path is None:
        WORK.mkdir(parents=True, exist_ok=True)
        path = WORK / f"sim_{args.lines}.json"
        for workers in sorted({1, args.workers}):
            seconds, size = simulate(args.lines, workers, path)
            print(
                f"simulate {args.lines} lines, workers={workers}: {size / 1e6:.0f} MB in "
                f"{seconds:.1f} s = {size / 1e6 / seconds:.1f} MB/s"
            )

    s_fast, b_fast, g_fast = time_reader(path, args.sample)
    s_ast, b_ast, g_ast = time_literal_eval(path, args.sample)
    assert b_fast == b_ast and g_fast == g_ast, "both parsers must see the same lines"
    fast, slow = b_fast / 1e6 / s_fast, b_ast / 1e6 / s_ast
    print(f"same {args.sample} lines ({b_fast / 1e6:.0f} MB, {g_fast} workouts):")
    print(f"  iter_raw          {s_fast:8.2f} s  {fast:8.1f} MB/s")
    print(f"  ast.literal_eval  {s_ast:8.2f} s  {slow:8.1f} MB/s")
    print(f"  ratio             {fast / slow:8.1f}x")
    s_all, b_all, g_all = time_reader(path)
    print(
        f"iter_raw whole file: {b_all / 1e6:.0f} MB, {g_all} workouts in {s_all:.1f} s = "
        f"{b_all / 1e6 / s_all:.1f} MB/s"
    )


if __name__ == "__main__":
    main()
