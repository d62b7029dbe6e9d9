"""`hrpred plan` on the real dev set (issue 28): plan each athlete's later runs from their
recorded routes at their recorded average pace, personalised with a profile of the runs
before, and score the planned average HR against the recorded one.

For each athlete in DEV/runs/<athlete>/ (files numbered in time order), the last `--targets`
files are planned. Each is read as a route (`hrpred.serve.route.load_route`: the recording as
`hrpred predict` sees it) and planned anew (`replan`: its times ignored) at its recorded
average moving pace (moving time / distance, standing still left out; no stops), spread over
its grades by the even-effort rule, starting when it started. The profile is built once per
athlete from the last `--targets` + `--history` files; predicting a run uses only the
profile's runs that started strictly before it (as `hrpred predict --profile`), and 20 files
before the first target give every target the same 10 most recent earlier runs, each with its
own 10 earlier runs as context, as a full history would. The same runs are also predicted as
recorded (`predict_activity` with the profile: the recorded pacing) for comparison.

Scores per athlete: MAE and bias of the planned (and predicted) average HR against the
recorded average HR, and the share of runs whose recorded average HR lies inside the average
HR's 80% band (`summary[headline]["band"]["avg_hr"]`). Prints one line per athlete and the
pooled numbers; `--write` puts them in BENCHMARKS.md's "## Plan on the dev set" section.

    python benchmarks/plan_dev.py ../shared/real-dev [--bundle models/bundle] [--write]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.report import replace_section  # noqa: E402


def athlete_runs(dev: Path) -> dict[str, list[Path]]:
    """Each athlete's run files in time order (their names start with the rank)."""
    runs = {}
    for folder in sorted((dev / "runs").iterdir()):
        if folder.is_dir():
            runs[folder.name] = sorted(f for f in folder.iterdir() if f.is_file())
    return runs


def score(rows: list[dict]) -> dict:
    """MAE, bias and band coverage of the planned and predicted average HR."""
    out = {"n": len(rows)}
    for kind in ("plan", "predict"):
        err = np.array([r[f"{kind}_avg"] - r["recorded_avg"] for r in rows])
        inside = [r[f"{kind}_lo"] <= r["recorded_avg"] <= r[f"{kind}_hi"] for r in rows]
        out[kind] = {
            "mae": float(np.mean(np.abs(err))),
            "bias": float(np.mean(err)),
            "coverage": float(np.mean(inside)),
            "width": float(np.mean([r[f"{kind}_hi"] - r[f"{kind}_lo"] for r in rows])),
        }
    return out


def run_athlete(
    bundle, files: list[Path], targets: int, history: int, skipped: list[str]
) -> list[dict]:
    from hrpred.io.userfiles import read_activity
    from hrpred.serve.plan import recorded_timing
    from hrpred.serve.planner import PlanRequest, plan_route
    from hrpred.serve.predict import predict_activity
    from hrpred.serve.profile import build_profile
    from hrpred.serve.route import load_route

    used = files[-(targets + history) :]
    profile, _ = build_profile(bundle, used)
    rows = []
    for path in files[-targets:]:
        try:
            activity = read_activity(path)
            recorded = predict_activity(bundle, activity, profile=profile)
            route = load_route(path, bundle.step_s, bundle.speed)
            moving = recorded_timing(route).moving_s[-1]
            request = PlanRequest(pace_s_per_km=moving / route.length_m * 1000.0, replan=True)
            plan = plan_route(bundle, route, request, profile=profile)
        except (ValueError, OSError) as exc:  # a file that cannot be planned: skipped, said
            skipped.append(f"{path.parent.name}/{path.name} ({exc})")
            print(f"  {path.name}: skipped ({exc})", file=sys.stderr)
            continue
        s, r = plan.summary, recorded.summary
        head = r if r["headline"] == "population" else r[r["headline"]]
        if "recorded_avg_hr" not in r or s["band"] is None:
            continue
        rows.append(
            {
                "file": path.name,
                "recorded_avg": r["recorded_avg_hr"],
                "plan_avg": s["avg_hr"],
                "plan_lo": s["band"]["avg_hr"][0],
                "plan_hi": s["band"]["avg_hr"][1],
                "predict_avg": head["avg_hr"],
                "predict_lo": head["band"]["avg_hr"][0],
                "predict_hi": head["band"]["avg_hr"][1],
                "headline": s["headline"],
                "context": (s.get("history") or {}).get("earlier_runs", 0),
            }
        )
    return rows


def fmt(name: str, sc: dict) -> str:
    p, q = sc["plan"], sc["predict"]
    return (
        f"| {name} | {sc['n']} | {p['mae']:.1f} | {p['bias']:+.1f} | {100 * p['coverage']:.0f}% "
        f"| {p['width']:.1f} | {q['mae']:.1f} | {q['bias']:+.1f} | {100 * q['coverage']:.0f}% |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dev", type=Path, help="the dev folder (../shared/real-dev)")
    ap.add_argument("--bundle", type=Path, default=ROOT / "models" / "bundle")
    ap.add_argument("--targets", type=int, default=15, help="last files planned per athlete")
    ap.add_argument("--history", type=int, default=20, help="files before them in the profile")
    ap.add_argument("--write", action="store_true", help="rewrite BENCHMARKS.md's section")
    args = ap.parse_args()
    from hrpred.serve.predict import load_bundle

    if not (args.dev / "runs").is_dir():
        raise SystemExit(f"{args.dev}: no runs/ folder (the dev set is not here)")
    bundle = load_bundle(args.bundle, torch_threads=1)
    t0 = time.perf_counter()
    table, pooled, skipped = [], [], []
    for athlete, files in athlete_runs(args.dev).items():
        rows = run_athlete(bundle, files, args.targets, args.history, skipped)
        pooled += rows
        line = fmt(athlete, score(rows))
        table.append(line)
        print(line, flush=True)
    total = fmt("all", score(pooled))
    print(total)
    bundle_name = args.bundle.resolve()
    if bundle_name.is_relative_to(ROOT):
        bundle_name = bundle_name.relative_to(ROOT)
    skips = "".join(f"\nSkipped: {s}." for s in skipped)
    text = (
        "## Plan on the dev set\n\n"
        f"`python benchmarks/plan_dev.py ../shared/real-dev` (bundle: {bundle_name}, "
        f"{time.perf_counter() - t0:.0f} s): each athlete's last {args.targets} runs planned "
        "from their recorded routes at their recorded average moving pace (the even-effort "
        "plan over the grades, no stops), personalised with a profile of the runs before "
        f"(the last {args.targets + args.history} files; each run uses only the earlier ones); "
        "beside it, the same runs predicted as recorded (`predict --profile`: the recorded "
        "pacing). Average HR against the recorded average; coverage: the share of runs whose "
        "recorded average lies inside the average-HR 80% band; width: the band's mean width.\n\n"
        "| athlete | runs | plan MAE | plan bias | plan coverage | plan band width | "
        "predict MAE | predict bias | predict coverage |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        + "\n".join([*table, total])
        + "\n"
        + skips
    )
    if args.write:
        replace_section("Plan on the dev set", text)


if __name__ == "__main__":
    main()
