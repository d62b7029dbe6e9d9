"""Benchmark: featurize (and split) a full-scale synthetic clean set; wall time and peak RSS.

    .venv/bin/python benchmarks/bench_featurize.py [--workouts 40000] [--row-group 1024]

Writes a synthetic `data/clean/workouts.parquet` (clean contract schema, random-walk signals)
under benchmarks/scratch/featurize/, runs `python -m stages.featurize` and `python -m stages.split`
there as child processes, records each child's peak RSS (VmHWM), and replaces the
"## Featurize" section of BENCHMARKS.md. The work folder is deleted afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from synthetic_clean import SCHEMA  # noqa: E402

WORK = ROOT / "benchmarks/scratch/featurize"
SECTION = "## Featurize"


def _lists(offsets: np.ndarray, values: np.ndarray) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values))


def synthetic_chunk(rng: np.random.Generator, first_id: int, n: int, n_users: int) -> pa.Table:
    """n workouts of 200..1000 steps, vectorised over the whole chunk."""
    lengths = rng.integers(200, 1001, n)
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    total = int(offsets[-1])
    starts = offsets[:-1]
    step = rng.integers(1, 12, total)
    cum = np.cumsum(step)
    t0 = 1_400_000_000 + rng.integers(0, 10**8, n)
    ts = np.repeat(t0 - cum[starts], lengths) + cum
    speed = np.clip(10 + 3 * np.sin(cum / 300.0) + rng.normal(0, 0.8, total), 0, 25)
    alt = np.repeat(rng.uniform(0, 1500, n), lengths) + 20 * np.sin(cum / 500.0)
    hr = 110 + 4 * speed + rng.normal(0, 3, total)
    valid = rng.random(total) > 0.02
    empty = pa.ListArray.from_arrays(pa.array(np.zeros(n + 1), pa.int32()),
                                     pa.array([], pa.float64()))  # fmt: skip
    users = rng.integers(0, n_users, n)
    cols = {
        "workout_id": pa.array(np.arange(first_id, first_id + n, dtype=np.int64)),
        "user_id": pa.array(users.astype(np.int64)),
        "line": pa.array(np.arange(first_id, first_id + n, dtype=np.int64) + 1),
        "sport": pa.array(["run"] * n),
        "gender": pa.array(np.array(["male", "female", "unknown"])[users % 3]),
        "timestamp": _lists(offsets, ts.astype(np.int64)),
        "speed": _lists(offsets, speed),
        "speed_source": pa.array(["native"] * n),
        "altitude": _lists(offsets, alt),
        "latitude": empty,
        "longitude": empty,
        "heart_rate": _lists(offsets, hr),
        "heart_rate_raw": _lists(offsets, hr),
        "hr_valid": _lists(offsets, valid),
        "fault": pa.array(["none"] * n),
        "correction": pa.array(["none"] * n),
        "offset_bpm": pa.array(np.zeros(n)),
        "offset_start": pa.array(np.full(n, -1, dtype=np.int64)),
        "offset_end": pa.array(np.full(n, -1, dtype=np.int64)),
        "confidence": pa.array(np.ones(n)),
    }
    return pa.Table.from_pydict(cols, schema=SCHEMA)


def write_synthetic(path: Path, n: int, row_group: int, seed: int = 0) -> int:
    """Write n workouts; returns the total number of steps."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    steps = 0
    with pq.ParquetWriter(path, SCHEMA) as w:
        for first in range(0, n, 2000):
            chunk = synthetic_chunk(rng, first, min(2000, n - first), n_users=max(n // 50, 1))
            w.write_table(chunk, row_group_size=row_group)
            steps += int(pa.compute.sum(pa.compute.list_value_length(chunk["timestamp"])).as_py())
    return steps


# Runs a stage module, then records the process's own high-water RSS (VmHWM, per address
# space). ru_maxrss from wait4 is not used: on Linux a child inherits the parent's RSS at fork.
_WRAPPER = (
    "import runpy, sys\n"
    "runpy.run_module(sys.argv[1], run_name='__main__', alter_sys=True)\n"
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
    "open(sys.argv[2], 'w').write(hwm)\n"
)


def run_child(module: str, cwd: Path) -> tuple[float, int]:
    """(wall s, peak RSS bytes) of `python -m module` in cwd."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    hwm = cwd / f".{module}.hwm"
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, module, str(hwm)], cwd=cwd, env=env)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{module} failed with exit code {proc.returncode}")
    return wall, int(hwm.read_text()) * 1024  # kB


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()}"


def update_benchmarks(text: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    text = text.rstrip("\n") + "\n\n"  # a blank line before the next section
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    new = pattern.sub(lambda _: text, old) if pattern.search(old) else old.rstrip() + "\n\n" + text
    path.write_text(new)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workouts", type=int, default=40000)
    ap.add_argument("--row-group", type=int, default=1024, help="workouts per parquet row group")
    ap.add_argument("--keep", action="store_true", help="keep benchmarks/scratch/featurize")
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = ap.parse_args()

    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    (WORK / "params.yaml").write_text(
        yaml.safe_dump({"featurize": params["featurize"], "split": params["split"]})
    )
    clean = WORK / "data/clean/workouts.parquet"
    t = time.perf_counter()
    steps = write_synthetic(clean, args.workouts, args.row_group)
    gen_s = time.perf_counter() - t
    print(f"generated {args.workouts} workouts, {steps} steps in {gen_s:.1f} s", file=sys.stderr)

    _, base_rss = run_child("hrpred.features.batch", WORK)  # imports only: the RSS floor
    feat_wall, feat_rss = run_child("stages.featurize", WORK)
    out = WORK / "data/features"
    arrays = {p.name: p.stat().st_size for p in sorted(out.glob("*.npy"))}
    total = sum(arrays.values())
    split_wall, split_rss = run_child("stages.split", WORK)

    seq_len = params["featurize"]["seq_len"]
    n_feat = len(params["featurize"]["features"])
    mb = 2**20
    cmd = f".venv/bin/python benchmarks/bench_featurize.py --workouts {args.workouts}"
    if args.row_group != 1024:
        cmd += f" --row-group {args.row_group}"
    lines = [
        SECTION,
        "",
        f"- Machine: {machine()}",
        f"- Command: `{cmd}` ({time.strftime('%Y-%m-%d')})",
        f"- Input: synthetic clean parquet, {args.workouts} workouts, {steps:,} steps "
        f"(200-1000 per workout), row groups of {args.row_group} workouts, "
        f"{clean.stat().st_size / mb:.0f} MiB on disk",
        f"- Output: seq_len {seq_len}, {n_feat} features, long_workouts "
        f"{params['featurize']['long_workouts']}",
        "",
        "| stage | wall (s) | peak RSS (MiB) | arrays written (MiB) | RSS / arrays |",
        "|---|---|---|---|---|",
        f"| featurize | {feat_wall:.1f} | {feat_rss / mb:.0f} | {total / mb:.0f} | "
        f"{feat_rss / total:.2f} |",
        f"| split (reads them) | {split_wall:.1f} | {split_rss / mb:.0f} | {total / mb:.0f} | "
        f"{split_rss / total:.2f} |",
        "",
        "Arrays: " + ", ".join(f"{k} {v / mb:.0f} MiB" for k, v in arrays.items()) + ".",
        f"Import baseline (python + numpy/pandas/pyarrow, no work): {base_rss / mb:.0f} MiB. "
        "Featurize streams parquet batches (`featurize.batch_size` workouts) into .npy files "
        "written block by block with plain file writes, so its RSS does not grow with the "
        "arrays; split fits the scaler from row blocks (`split.scaler_block_rows`).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        update_benchmarks(text)
    if not args.keep:
        shutil.rmtree(WORK)


if __name__ == "__main__":
    main()
