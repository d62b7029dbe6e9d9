"""A fresh clone's `dvc repro` (issue 27): wall time per stage, a baseline revision against a
candidate in the same run.

Usage:
  python benchmarks/bench_repro.py --baseline c5c6458 [--candidate HEAD] [--repeats 2]

Each repeat clones this repository twice into `--scratch` (default: a temporary folder), checks
out the baseline and the candidate (alternating which goes first, so a machine that speeds up
or slows down during the run does not favour one), runs `python -m dvc repro` in each with this
interpreter, and times every stage from the moment dvc starts it to the next one (dvc's own
hashing and lock writing included; the pip install is not). Prints one JSON line per run and a
summary with the candidate/baseline ratio of the total per repeat. Only committed files are
cloned: commit before measuring a change.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGE = re.compile(r"Running stage '([^']+)'")


def interpreter_env() -> dict[str, str]:
    """This process's environment with this interpreter's folder first on PATH (its `dvc`
    and `python`)."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def clone_at(rev: str, work: Path) -> dict[str, str]:
    """Clone this repository at `rev` into `work`; the environment that runs this
    interpreter's `dvc` there."""
    subprocess.run(["git", "clone", "-q", str(ROOT), str(work)], check=True)
    subprocess.run(["git", "checkout", "-q", rev], cwd=work, check=True)
    return interpreter_env()


def timed_repro(rev: str, work: Path) -> dict[str, object]:
    """Clone at `rev` into `work`, run `dvc repro`; seconds per stage and in total."""
    env = clone_at(rev, work)
    marks: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        m = STAGE.search(line)
        if m:
            marks.append((m.group(1), time.perf_counter() - t0))
    if proc.wait() != 0:
        raise SystemExit(f"dvc repro failed at {rev} in {work}")
    total = time.perf_counter() - t0
    ends = [t for _, t in marks[1:]] + [total]
    stages = {name: round(end - start, 1) for (name, start), end in zip(marks, ends, strict=True)}
    return {"rev": rev, "total_s": round(total, 1), "stages_s": stages,
            "load": os.getloadavg()[0]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True, help="git revision to compare against")
    ap.add_argument("--candidate", default="HEAD")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--scratch", type=Path, default=None)
    args = ap.parse_args()
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="bench_repro-"))
    ratios, totals = [], {"baseline": [], "candidate": []}
    for i in range(args.repeats):
        order = [("baseline", args.baseline), ("candidate", args.candidate)]
        if i % 2:
            order.reverse()
        run = {}
        for role, rev in order:
            res = timed_repro(rev, scratch / f"{i}-{role}")
            print(json.dumps({"repeat": i, "role": role, **res}), flush=True)
            run[role] = res["total_s"]
            totals[role].append(res["total_s"])
        ratios.append(run["candidate"] / run["baseline"])
    print(json.dumps({
        "baseline": args.baseline, "candidate": args.candidate,
        "baseline_total_s": totals["baseline"], "candidate_total_s": totals["candidate"],
        "ratio_per_repeat": [round(r, 3) for r in ratios],
        "ratio_median": round(statistics.median(ratios), 3),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
