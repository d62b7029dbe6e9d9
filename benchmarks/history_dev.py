"""A runner's history on the real dev set (issue 29): per athlete of ../shared/real-dev/runs,
the profile of their runs (the last `--max-runs` of them), the trend (CSV and PNG to
benchmarks/scratch/history/, never committed: they are the athletes' data), and on their last
`--test` runs (each personalised only from the runs before it):
- fill: a 10-minute span of HR removed from the middle of the run; `hr_filled` there (the
  headline prediction) against the recorded HR: MAE, and the share of removed samples inside
  the band (`hr_filled_p10`-`hr_filled_p90`), beside the headline's MAE on the whole run;
- check: the unshifted run reported above or below expectation (false alarms) and the run with
  its HR shifted +10 BPM reported above (detections).

    python benchmarks/history_dev.py ../shared/real-dev/runs --bundle models/bundle
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from hrpred.bundle.runtime import load_bundle
from hrpred.io.userfiles import read_activity
from hrpred.serve.check import check_activity
from hrpred.serve.profile import build_profile
from hrpred.serve.trend import save_trend_figure, trend_table

OUT = Path(__file__).resolve().parent / "scratch" / "history"
SPAN_S = 600.0  # the HR span removed
SHIFT_BPM = 10.0


def _fill(bundle, profile, activity) -> dict:
    t = activity.timestamp - activity.timestamp[0]
    mid = 0.5 * t[-1]
    span = (t >= mid - SPAN_S / 2) & (t < mid + SPAN_S / 2)
    hr = activity.heart_rate.copy()
    hr[span] = np.nan
    c = check_activity(bundle, replace(activity, heart_rate=hr), profile)
    truth = activity.heart_rate
    ok = span & np.isfinite(truth)
    f = c.frame
    err = np.abs(f["hr_filled"].to_numpy()[ok] - truth[ok])
    lo, hi = f["hr_filled_p10"].to_numpy()[ok], f["hr_filled_p90"].to_numpy()[ok]
    whole = check_activity(bundle, activity, profile)
    w = whole.frame
    valid = ~w["filled"].to_numpy()
    head = np.abs(w["hr_personal"].to_numpy()[valid] - w["hr_true"].to_numpy()[valid])
    high = check_activity(bundle, replace(activity, heart_rate=truth + SHIFT_BPM), profile)
    return {
        "fill_abs_sum": float(err.sum()), "fill_n": int(ok.sum()),
        "covered": int(((truth[ok] >= lo) & (truth[ok] <= hi)).sum()),
        "headline_abs_sum": float(head.sum()), "headline_n": int(valid.sum()),
        "false_alarm": whole.summary["verdict"] in ("above", "below"),
        "detected": high.summary["verdict"] == "above",
    }  # fmt: skip


def athlete(bundle, folder: Path, max_runs: int, test: int) -> dict:
    files = sorted(p for p in folder.iterdir() if p.is_file())[-max_runs:]
    profile, warns = build_profile(bundle, files)
    table = trend_table(profile, bundle)
    OUT.mkdir(parents=True, exist_ok=True)
    table.to_csv(OUT / f"{folder.name}_trend.csv", index=False, float_format="%.3f")
    save_trend_figure(table, OUT / f"{folder.name}_trend.png", folder.name)
    by_file = {Path(r["file"]).name: r for r in profile.runs}
    results = []
    for run in profile.runs[-test:]:
        path = next(p for p in files if p.name == run["file"])
        results.append(_fill(bundle, profile, read_activity(path)))
    tot = {k: sum(r[k] for r in results) for k in results[0]}
    return {
        "athlete": folder.name, "runs": profile.content["n_runs"], "skipped": len(warns),
        "changes": int(table["change_bpm"].notna().sum()),
        "flagged_runs": int((table["flag"] != "").sum()),
        "decoupling_model_bpm": float(table["decoupling_model_bpm"].mean()),
        "decoupling_pa_hr_pct": float(table["decoupling_pa_hr_pct"].mean()),
        "reference_first_bpm": float(table["reference_bpm"].iloc[0]),
        "reference_last_bpm": float(table["reference_bpm"].iloc[-1]),
        "reference_last_band": [float(table["reference_lo_bpm"].iloc[-1]),
                                float(table["reference_hi_bpm"].iloc[-1])],
        "reference_sd_bpm": float(table["reference_bpm"].std()),
        "level_sd_bpm": float(table["level_bpm"].std()),
        "test_runs": len(results),
        "fill_mae": tot["fill_abs_sum"] / max(tot["fill_n"], 1),
        "fill_coverage": tot["covered"] / max(tot["fill_n"], 1),
        "headline_mae": tot["headline_abs_sum"] / max(tot["headline_n"], 1),
        "false_alarms": int(tot["false_alarm"]), "detected_plus10": int(tot["detected"]),
        "files_in_profile": len(by_file),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, help="../shared/real-dev/runs")
    ap.add_argument("--bundle", type=Path, default=Path("models/bundle"))
    ap.add_argument("--max-runs", type=int, default=60)
    ap.add_argument("--test", type=int, default=10)
    args = ap.parse_args()
    bundle = load_bundle(args.bundle, torch_threads=1)
    rows = []
    for folder in sorted(p for p in args.runs.iterdir() if p.is_dir()):
        row = athlete(bundle, folder, args.max_runs, args.test)
        print(json.dumps(row), flush=True)
        rows.append(row)
    n = sum(r["test_runs"] for r in rows)
    print(json.dumps({
        "athletes": len(rows), "test_runs": n,
        "fill_mae_mean": float(np.mean([r["fill_mae"] for r in rows])),
        "fill_coverage_mean": float(np.mean([r["fill_coverage"] for r in rows])),
        "headline_mae_mean": float(np.mean([r["headline_mae"] for r in rows])),
        "false_alarm_rate": sum(r["false_alarms"] for r in rows) / n,
        "detection_rate_plus10": sum(r["detected_plus10"] for r in rows) / n,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
