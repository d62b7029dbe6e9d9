"""Personalisation on real runners' own files, exactly as a runner uses `hrpred`.

For each athlete of a real-dev folder (`../shared/real-dev/runs/<athlete>/NNNN_*`, NNNN = the
run's rank in time), the last `--last` files are predicted one by one with `hrpred predict
--profile` semantics: a profile (`hrpred profile`) of the athlete's files, of which only those
that started strictly before the predicted run are read. `--history window` (default) builds
the profile of the last `--last` files only (each run's history = the earlier ones among
them, the protocol of issue 24); `--history all` of every file of the athlete.

Prints, per athlete, the mean file MAE (`summary["mae"]` of `hrpred predict`: on the file's own
points with recorded HR) of the population prediction, the offset personaliser, the learned
personaliser (history bundles) and the headline (`hrpred predict`'s personal prediction), and
overall: the mean over every predicted file and the athletes whose headline is worse than their
population mean; beside it the headline band's coverage (the share of the files' recorded HR
points inside `hr_p10`-`hr_p90`), per athlete and for the runs less / at least 30 days after
the athlete's latest earlier run.

    python benchmarks/real_personal.py ../shared/real-dev [--last 15] [--history window|all]
        [--athletes a b ...] [--bundle models/bundle] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PREDICTORS = ("population", "offset", "learned", "headline")
SUFFIXES = (".fit", ".gpx", ".tcx", ".csv")


def athlete_files(folder: Path) -> list[Path]:
    """An athlete's files in time order (their NNNN_ prefix)."""
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and any(p.name.lower().removesuffix(".gz").endswith(s) for s in SUFFIXES)
    ]
    return sorted(files, key=lambda p: p.name)


def file_maes(summary: dict) -> dict[str, float]:
    """MAE of each predictor of one `predict_activity` summary (nan where absent)."""
    out = {
        "population": summary.get("mae", np.nan),
        "offset": summary.get("offset", {}).get("mae", np.nan),
        "learned": summary.get("learned", {}).get("mae", np.nan),
        "headline": summary.get("personal", {}).get("mae", summary.get("mae", np.nan)),
    }
    return {k: float(v) for k, v in out.items()}


def band_coverage(frame) -> dict[str, float]:
    """The headline band's share of the file's recorded HR points inside it (`hr_p10` -
    `hr_p90` of `hrpred predict`) and how many points were scored (0 without a band)."""
    if "hr_p10" not in frame or "hr_true" not in frame:
        return {"band_points": 0, "band_covered": 0}
    y = frame["hr_true"].to_numpy(np.float64)
    lo, hi = frame["hr_p10"].to_numpy(np.float64), frame["hr_p90"].to_numpy(np.float64)
    ok = np.isfinite(y) & np.isfinite(lo) & np.isfinite(hi)
    return {"band_points": int(ok.sum()), "band_covered": int(((y >= lo) & (y <= hi) & ok).sum())}


def run_athlete(bundle, folder: Path, last: int, history: str) -> list[dict]:
    from hrpred.io.userfiles import read_activity
    from hrpred.serve.predict import predict_activity
    from hrpred.serve.profile import build_profile

    files = athlete_files(folder)
    targets = files[-last:]
    profile, _ = build_profile(bundle, targets if history == "window" else files)
    rows = []
    for f in targets:
        pred = predict_activity(bundle, read_activity(f), profile=profile)
        s = pred.summary
        hist = s.get("history", {})
        gap = hist.get("days_since_latest_run")
        rows.append(
            {
                "athlete": folder.name,
                "file": f.name,
                "earlier_runs": hist.get("earlier_runs", 0),
                "days_since_latest_run": np.nan if gap is None else float(gap),
                "change": hist.get("note"),
                "recorded_avg_hr": s.get("recorded_avg_hr", np.nan),
                **file_maes(s),
                **band_coverage(pred.frame),
            }
        )
    return rows


def report(rows: list[dict]) -> str:
    import pandas as pd

    frame = pd.DataFrame(rows)
    groups = frame.groupby("athlete", sort=False)
    per = groups[list(PREDICTORS)].mean()
    per.insert(0, "runs", groups.size())
    covered = groups[["band_covered", "band_points"]].sum()
    per["band"] = covered["band_covered"] / covered["band_points"].where(covered["band_points"] > 0)
    lines = ["| athlete | runs | " + " | ".join(PREDICTORS) + " | band coverage |"]
    lines.append("|---|---:|" + "---:|" * (len(PREDICTORS) + 1))
    for name, r in per.iterrows():
        vals = " | ".join(f"{r[p]:.2f}" for p in PREDICTORS)
        lines.append(f"| {name} | {int(r['runs'])} | {vals} | {r['band']:.3f} |")
    mean = frame[list(PREDICTORS)].mean()
    total = frame["band_covered"].sum() / max(frame["band_points"].sum(), 1)
    lines.append(
        f"| **all files** | {len(frame)} | "
        + " | ".join(f"{mean[p]:.2f}" for p in PREDICTORS)
        + f" | {total:.3f} |"
    )
    gaps = frame["days_since_latest_run"]
    for name, sel in (("< 30 days", gaps < 30), (">= 30 days", gaps >= 30)):
        pts = frame.loc[sel, "band_points"].sum()
        cov = frame.loc[sel, "band_covered"].sum() / pts if pts else float("nan")
        lines.append(f"band coverage of runs {name} after the latest earlier run: {cov:.3f} "
                     f"({int(sel.sum())} runs)")  # fmt: skip
    worse = per.index[per["headline"] > per["population"]].tolist()
    lines.append("")
    lines.append(f"athletes whose headline mean is above their population mean: {worse or 'none'}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dev", type=Path, help="real-dev folder (with runs/<athlete>/)")
    parser.add_argument("--last", type=int, default=15, help="files predicted per athlete")
    parser.add_argument("--history", choices=("window", "all"), default="window")
    parser.add_argument("--athletes", nargs="*", help="athletes (default: every folder)")
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "bundle")
    parser.add_argument("--json", type=Path, help="write the per-file rows here")
    args = parser.parse_args()
    from hrpred.bundle.runtime import load_bundle

    runs = args.dev / "runs"
    if not runs.is_dir():
        sys.exit(f"{runs} not found: pass the real-dev folder (../shared/real-dev)")
    bundle = load_bundle(args.bundle)
    names = args.athletes or sorted(p.name for p in runs.iterdir() if p.is_dir())
    rows: list[dict] = []
    t0 = time.perf_counter()
    for name in names:
        t = time.perf_counter()
        rows += run_athlete(bundle, runs / name, args.last, args.history)
        print(f"{name}: {time.perf_counter() - t:.1f} s", file=sys.stderr)
    print(f"history: {args.history}, last {args.last} files per athlete, bundle {args.bundle}")
    print(report(rows))
    print(f"({time.perf_counter() - t0:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
