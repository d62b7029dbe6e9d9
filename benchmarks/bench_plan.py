"""Benchmark `hrpred plan` (issue 28): wall time on a 1-hour route (Python start-up included),
at a pace and with an HR cap, without and with a profile of 10 earlier runs, beside `hrpred
predict` on a 1-hour recording under the same load; and in-process, the plan itself and the
number of model runs the cap search makes.

The route: `tests.plan_fixtures.hilly_loop` stretched to 12 km (a 60 m climb, rolling ground),
a GPX route with a point every 10 m, planned at 5:00 min/km (60 min). The bundle and the
profile are `benchmarks/bench_predict.py`'s (models/bundle when it loads, else a random
history model of the training architecture: timing does not depend on the weights). Rewrites
the "## Plan" section of BENCHMARKS.md (created if absent).

    python benchmarks/bench_plan.py [--runs 5] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_predict import (  # noqa: E402
    bench_bundle,
    predict_cmd,
    profile_cmd,
    time_cmds,
)
from benchmarks.report import replace_section, timing_row  # noqa: E402
from tests.plan_fixtures import hilly_loop, write_route_gpx  # noqa: E402
from tests.predict_fixtures import simulated_workout, write_gpx  # noqa: E402

WORK = ROOT / "benchmarks" / "scratch" / "plan"
ROUTE_M = 12_000.0  # 60 min at 5:00 min/km
CAP_BPM = "150"


def plan_cmd(bundle: Path, route: Path, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "hrpred", "plan", str(route), "--bundle", str(bundle)]
    return [*cmd, "--start", "2024-06-01T08:00", "--out", str(WORK / "plan.csv"), "--quiet", *extra]


def time_in_process(bundle_dir: Path, route_path: Path, profile: Path, runs: int) -> dict:
    """Seconds of `plan_route` after all imports (pace, cap; without and with the profile)
    and the cap search's model runs."""
    from hrpred.serve.planner import PlanRequest, plan_route
    from hrpred.serve.predict import load_bundle
    from hrpred.serve.profile import load_profile
    from hrpred.serve.route import load_route

    bundle = load_bundle(bundle_dir, torch_threads=1)
    route = load_route(route_path, bundle.step_s, bundle.speed)
    prof = load_profile(profile)
    start = 1_717_228_800.0  # 2024-06-01T08:00Z
    requests = {
        "pace": (PlanRequest(pace_s_per_km=300.0, start_time=start), None),
        "pace_profile": (PlanRequest(pace_s_per_km=300.0, start_time=start), prof),
        "cap": (PlanRequest(hr_cap=float(CAP_BPM), start_time=start), None),
        "cap_profile": (PlanRequest(hr_cap=float(CAP_BPM), start_time=start), prof),
    }
    out: dict = {k: [] for k in requests}
    runs_of: dict = {}
    for _ in range(runs):
        for name, (request, p) in requests.items():
            t0 = time.perf_counter()
            outcome = plan_route(bundle, route, request, profile=p)
            out[name].append(time.perf_counter() - t0)
            if outcome.cap is not None:
                runs_of[name] = (outcome.cap.evaluations, outcome.summary["cap"]["share"])
    return {"times": out, "model_runs": runs_of}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()[0]
    bundle, which = bench_bundle()
    route = write_route_gpx(WORK / "route_12km.gpx", *hilly_loop(ROUTE_M, 10.0))
    gpx = write_gpx(WORK / "run_1h_1hz.gpx", simulated_workout(3600, 1.0), hr=True)
    profile = WORK / "me.json"
    subprocess.run(profile_cmd(bundle, profile), check=True, cwd=ROOT)
    with_profile = ("--profile", str(profile))
    cmds = {
        "pace": (plan_cmd(bundle, route, "--pace", "5:00"), ""),
        "pace_profile": (plan_cmd(bundle, route, "--pace", "5:00", *with_profile), ""),
        "cap": (plan_cmd(bundle, route, "--hr-cap", CAP_BPM), ""),
        "cap_profile": (plan_cmd(bundle, route, "--hr-cap", CAP_BPM, *with_profile), ""),
        "predict": (predict_cmd(bundle, gpx), ""),
    }
    timed = time_cmds(cmds, args.runs)
    inproc = time_in_process(bundle, route, profile, args.runs)
    load = os.getloadavg()
    cpu = platform.processor() or platform.machine()

    def row(label: str, key: str, target: str) -> str:
        return timing_row(label, *timed[key], target)

    def ms(key: str) -> str:
        return f"{1000 * statistics.median(inproc['times'][key]):.0f}"

    runs = inproc["model_runs"]
    text = (
        "## Plan\n\n"
        f"`python benchmarks/bench_plan.py` on {os.cpu_count()} CPU cores ({cpu}), Python "
        f"{platform.python_version()}; bundle: {which}; 1-min load average {load0:.1f} at the "
        f"start, {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min) at the end (shared "
        "machine). The route: a 12 km GPX route (a point every 10 m, a 60 m climb, rolling "
        "ground; `tests/plan_fixtures.py`), 60 min at 5:00 min/km; the profile: 10 earlier "
        "runs. Wall times include Python start-up; CPU = user + sys time of the command.\n\n"
        "| measure | median | min | max | CPU (median) | target |\n"
        "|---|---:|---:|---:|---:|---:|\n"
        + row("`hrpred plan route.gpx --pace 5:00` (1-hour route)", "pace", "< 2 s")
        + row("`hrpred plan ... --pace 5:00 --profile me.json`", "pace_profile", "< 2 s")
        + row(f"`hrpred plan route.gpx --hr-cap {CAP_BPM}`", "cap", "< 10 s")
        + row(f"`hrpred plan ... --hr-cap {CAP_BPM} --profile me.json`", "cap_profile", "< 10 s")
        + row("`hrpred predict` 1-hour 1 Hz GPX, same load (reference)", "predict", "")
        + f"| `plan_route` in-process (after imports): pace / + profile / cap / cap + profile "
        f"| {ms('pace')} / {ms('pace_profile')} / {ms('cap')} / {ms('cap_profile')} ms "
        "| | | | |\n" + f"| model runs of the cap search (share of steps under the cap): "
        f"{runs['cap'][0]} ({100 * runs['cap'][1]:.0f}%), with the profile {runs['cap_profile'][0]} "
        f"({100 * runs['cap_profile'][1]:.0f}%) | | | | | |\n"
    )
    print(text)
    if not args.no_write:
        replace_section("Plan", text)


if __name__ == "__main__":
    main()
