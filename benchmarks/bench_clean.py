"""Benchmark the clean stage: throughput (MB/s of raw input) and peak memory.

Usage:
  python benchmarks/bench_clean.py --workouts 20000 [--users 1000] [--workers 2]
  python benchmarks/bench_clean.py --raw path/to/file.json   # an existing raw file

Simulates a file with the project's simulator (default physiology and fault rates) into
a scratch directory unless --raw is given, then runs the clean engine with the params.yaml
`clean:` settings. Peak RSS is reported for this process and for the largest worker.

In the same run a plain `ast.literal_eval` loop (the reference's parser, one process) reads
the file's first --baseline-mb MB (0: all of it, before the clean engine), half of them just before the clean engine and
half just after it, so that a machine whose speed drifts during the run moves both sides alike;
the ratio of the two throughputs is the load-independent figure on a shared machine.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hrpred.clean.config import CleanConfig  # noqa: E402
from hrpred.clean.pipeline import clean_raw  # noqa: E402
from hrpred.params import load_config, read_params  # noqa: E402
from hrpred.simulate import SimConfig, simulate_dataset  # noqa: E402
from hrpred.store import Layout  # noqa: E402


def literal_eval_seconds(path: Path, limit_mb: float) -> tuple[float, float]:
    """(MB read, seconds) of `ast.literal_eval` over the file's first limit_mb MB of lines."""
    limit = limit_mb * 1e6 if limit_mb > 0 else float("inf")
    done = 0
    began = time.perf_counter()
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                try:
                    ast.literal_eval(line.decode("utf-8", "replace").strip())
                except (ValueError, SyntaxError, MemoryError, RecursionError):
                    pass  # the reference skips unparseable lines too
            done += len(line)
            if done >= limit:
                break
    return done / 1e6, time.perf_counter() - began


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workouts", type=int, default=20000)
    ap.add_argument("--users", type=int, default=0, help="default: workouts / 20")
    ap.add_argument("--workers", type=int, default=0, help="default: params clean.workers")
    ap.add_argument("--raw", type=Path, default=None)
    ap.add_argument("--scratch", type=Path, default=None)
    ap.add_argument(
        "--baseline-mb", type=float, default=100.0, help="literal_eval sample (0: whole file)"
    )
    args = ap.parse_args()

    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="bench-clean-"))
    scratch.mkdir(parents=True, exist_ok=True)
    params = read_params(ROOT / "params.yaml")
    raw = args.raw
    if raw is None:
        raw = scratch / f"sim-{args.workouts}.json"
        if not raw.exists():
            users = args.users or max(args.workouts // 20, 1)
            sim = load_config(SimConfig, "simulate", data=params)
            sim = replace(sim, n_workouts=args.workouts, n_users=users, workers=2)
            simulate_dataset(sim, raw, scratch / f"truth-{args.workouts}.parquet")
    cfg = load_config(CleanConfig, "clean", data=params)
    if args.workers:
        cfg = replace(cfg, workers=args.workers)
    layout = Layout(scratch)  # outputs under <scratch>/data/clean
    size_mb = raw.stat().st_size / 1e6
    whole = args.baseline_mb <= 0  # the whole file once, before the clean engine
    half_mb = 0.0 if whole else args.baseline_mb / 2
    before_mb, before_s = literal_eval_seconds(raw, half_mb)
    load_before = os.getloadavg()
    began = time.perf_counter()
    cpu0 = time.process_time()
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu0 = c0.ru_utime + c0.ru_stime
    metrics = clean_raw(cfg, raw, layout, progress=True)
    wall = time.perf_counter() - began
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_rss = children.ru_maxrss / 1024
    cpu = time.process_time() - cpu0 + children.ru_utime + children.ru_stime - child_cpu0
    main_cpu = time.process_time() - cpu0
    after_mb, after_s = (0.0, 0.0) if whole else literal_eval_seconds(raw, half_mb)
    base_mb, base_rate = before_mb + after_mb, (before_mb + after_mb) / (before_s + after_s)
    result = {
        "raw": str(raw),
        "raw_mb": round(size_mb, 1),
        "lines": metrics["lines_read"],
        "workers": cfg.workers,
        "wall_s": round(wall, 2),
        "mb_per_s": round(size_mb / wall, 1),
        "main_cpu_s": round(main_cpu, 2),
        "total_cpu_s": round(cpu, 2),
        "mb_per_cpu_s": round(size_mb / cpu, 1),  # load-independent: x2 for 2 idle cores
        "literal_eval_mb": round(base_mb, 1),
        "literal_eval_mb_per_s": round(base_rate, 2),
        "literal_eval_mb_per_s_before_after": [
            round(before_mb / before_s, 2),
            round(after_mb / after_s, 2) if after_s else None,
        ],
        "x_literal_eval": round(size_mb / wall / base_rate, 2),
        "load_avg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "peak_rss_main_mb": round(self_rss, 1),
        "peak_rss_worker_mb": round(child_rss, 1),
        "workouts_kept": metrics["workouts_kept"],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
