"""How much the default simulation's headline figures move with the simulated world: the whole
pipeline on a fresh clone, once per `simulate.seed`.

Usage:
  python benchmarks/seed_spread.py [--seeds 42 7 3 11 5] [--rev HEAD] [--scratch DIR]

Clones this repository at `--rev` into `--scratch` (default: a temporary folder), then for each
seed runs `python -m dvc exp run -S simulate.seed=SEED` there (every stage reruns: the raw data
changes) and prints one JSON line of that world's figures: test MAE (personal, cold), the
headline over the plain constant on workouts with >= 3 earlier runs, the headline over cold
within 5 runs after a level change and from the 3rd run on, the share of runners made > 10%
worse (each with its 90% interval over redrawn test runners), the band's coverage after a
change and per history bucket (0, 1-2, 3-9, 10+ earlier runs), and the two simulated fault types whose recall is closest to issue 26's 0.85. Then a
summary: the range of each figure over the seeds. Only committed files are cloned.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_repro import clone_at  # noqa: E402

FAULTS = ("cadence_follow", "strap_drying")


def figures(work: Path) -> dict[str, Any]:
    """The figures of one finished run (metrics/evaluate.json and metrics/clean.json)."""
    ev = json.loads((work / "metrics" / "evaluate.json").read_text())["test"]
    cl = json.loads((work / "metrics" / "clean.json").read_text())["detection"]["per_fault"]
    ac, h3, worse = ev["after_change"], ev["history_3plus"], ev["runners_made_worse"]
    band_ac = ev.get("band", {}).get("after_change", {})
    return {
        "personal_mae": ev["personal"]["mae"],
        "cold_mae": ev["cold"]["mae"],
        "history_3plus": [h3["headline_to_constant"], *h3["headline_to_constant_runner_interval_90"]],
        "after_change": [ac["all"]["personal_to_cold"],
                         *ac["all"]["personal_to_cold_runner_interval_90"]],
        "after_change_late": [ac["late"]["personal_to_cold"],
                              *ac["late"]["personal_to_cold_runner_interval_90"]],
        "late_runners": ac["late"]["n_runners"],
        "runners_made_worse": [worse["share"], *worse["share_runner_interval_90"]],
        "band_after_change": band_ac.get("coverage"),
        "band_by_history": [v["coverage"] for v in ev.get("band", {}).get("by_history", {}).values()],
        **{f"{f}_recall": cl[f]["recall"] for f in FAULTS},
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 7, 3, 11, 5])
    ap.add_argument("--rev", default="HEAD")
    ap.add_argument("--scratch", type=Path, default=None)
    args = ap.parse_args()
    work = (args.scratch or Path(tempfile.mkdtemp(prefix="seed_spread-"))) / "repo"
    env = clone_at(args.rev, work)
    rows = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "dvc", "exp", "run", "-S", f"simulate.seed={seed}"]
        done = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"seed {seed}: dvc exp run failed in {work}:\n{done.stderr[-2000:]}")
        row = {"seed": seed, "wall_s": round(time.perf_counter() - t0, 1), **figures(work)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    print("range over seeds " + " ".join(str(s) for s in args.seeds) + ":")
    for key in rows[0]:
        if key in ("seed", "wall_s"):
            continue
        if key == "band_by_history":  # every bucket's coverage, not (value, interval)
            vals = [v for r in rows for v in r[key]]
        else:
            vals = [r[key][0] if isinstance(r[key], list) else r[key] for r in rows]
        vals = [v for v in vals if v is not None]
        if vals:
            print(f"  {key}: {min(vals):.4g} - {max(vals):.4g}")


if __name__ == "__main__":
    main()
