"""A runner's history on the simulator, against its truth (issue 29): the default pipeline's
test runners (data/eval/workouts.parquet, split test), each with ALL their simulated runs
(data/raw/simulated.json, faulty ones included, as a runner's export holds them) profiled
with `build_profile` (each run as a CSV member of an in-memory export), then
- trend vs truth: each fault-free run's trend level (`level_bpm`: HR above the population
  model) against the simulator's level that day (truth `level_bpm`), after removing each
  runner's constant (the trend's level is relative to the population, the truth's to the
  runner's own physiology): MAE, and the same for the trend's level at the standard effort
  (`reference_bpm`, from the runs up to each one); and each true sudden change of >= 10 BPM (truth
  `change_day`/`change_bpm`, with at least 3 runs after it) found by the plans of the 1-3 runs
  after it (`hrpred.serve.trend.changes`);
- check: each fault-free run with >= 3 earlier runs checked against the runner's profile
  (`check_activity`, only earlier runs used): an `above`/`below` verdict is a false alarm; the
  same run with HR +10 BPM should be `above`;
- fill: runs with a simulated dropout or lock (truth `fault`, span `fault_start`-`fault_end`)
  and >= 3 earlier runs: `hr_filled` in the span against the truth `hr_clean` (MAE) and the
  share of span samples inside `hr_filled_p10`-`hr_filled_p90`.

    python benchmarks/history_sim.py --bundle models/bundle [--users 80] [--fault-free]
"""

from __future__ import annotations

import argparse
import io
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from hrpred.bundle.runtime import load_bundle
from hrpred.io.exports import RunSource
from hrpred.io.raw import iter_raw
from hrpred.serve.check import check_activity
from hrpred.serve.profile import build_profile
from hrpred.serve.trend import changes, trend_table

SHIFT_BPM = 10.0
CHANGE_BPM = 10.0
WITHIN_RUNS = 3
MIN_EARLIER = 3
CHANNELS = ("timestamp", "latitude", "longitude", "altitude", "heart_rate")
FILL_FAULTS = ("dropout", "low_dropout", "flatline", "cadence_lock", "slow_lock", "stuck_low")


def _csv(w: dict) -> bytes:
    frame = pd.DataFrame(
        {
            k: w[k]
            for k in ("timestamp", "latitude", "longitude", "altitude", "heart_rate")
            if k in w
        }
    )
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue().encode()


def _aligned(w: dict) -> bool:
    """Channels of one length (a `length_mismatch` line cannot be a file: left out)."""
    return len({len(w[k]) for k in CHANNELS if k in w}) == 1


def _source(w: dict) -> RunSource:
    data = _csv(w)
    return RunSource(f"sim/{w['userId']}/{w['id']}.csv", "csv", lambda warns: data, "running")


def _runner(bundle, workouts: list[dict], truth: pd.DataFrame, out: dict) -> None:
    sources = {int(w["id"]): _source(w) for w in workouts}
    profile, _ = build_profile(bundle, list(sources.values()))
    runs = profile.runs
    if len(runs) < 2:
        return
    table = trend_table(profile, bundle)
    ids = [int(Path(r["file"]).stem) for r in runs]
    tr = truth.loc[ids]
    ok = (tr["fault"] == "none").to_numpy()
    diff = table["level_bpm"].to_numpy() - tr["level_bpm"].to_numpy()
    if ok.sum() >= 2:
        d = diff[ok] - diff[ok].mean()
        out["level_err"] += list(np.abs(d))
        truth_level = tr["level_bpm"].to_numpy()[ok]
        out["flat_err"] += list(np.abs(truth_level - truth_level.mean()))
        ref = table["reference_bpm"].to_numpy()[ok] - tr["level_bpm"].to_numpy()[ok]
        out["reference_err"] += list(np.abs(ref - ref.mean()))
        exp = table["expected_bpm"].to_numpy()[ok] - tr["level_bpm"].to_numpy()[ok]
        e = exp[np.isfinite(exp)]
        if len(e) >= 2:
            out["expected_err"] += list(np.abs(e - e.mean()))
        out["level_sd"].append(float(tr["level_bpm"].to_numpy()[ok].std()))
    # true sudden changes: the first run on a new change_day
    cd = tr["change_day"].to_numpy()
    found = changes(profile)
    for k in range(1, len(runs)):
        new = np.isfinite(cd[k]) and (not np.isfinite(cd[k - 1]) or cd[k] != cd[k - 1])
        size = float(tr["change_bpm"].iloc[k])
        if not new or abs(size) < CHANGE_BPM or k + WITHIN_RUNS >= len(runs):
            continue
        hit = any(
            abs(s - k) <= 1 and k + 1 <= at <= k + WITHIN_RUNS for s, (_, at) in found.items()
        )
        ever = any(abs(s - k) <= 1 for s in found)
        out["changes"].append({"size": size, "found": hit, "ever": ever})
    for i, wid in enumerate(ids):
        if i < MIN_EARLIER:
            continue
        row = tr.iloc[i]
        if row["fault"] == "none":
            act = sources[wid].read()
            base = check_activity(bundle, act, profile).summary
            out["usual"].append(float(base["usual_bpm"]))
            out["deviation"].append(float(base["deviation_bpm"]))
            out["false_alarm"].append(base["verdict"] in ("above", "below"))
            high = replace(act, heart_rate=act.heart_rate + SHIFT_BPM)
            shifted = check_activity(bundle, high, profile).summary
            out["detected"].append(shifted["verdict"] == "above")
            out["deviation10"].append(float(shifted["deviation_bpm"]))
            out["shift_dev"].append(float(shifted["deviation_bpm"]) - float(base["deviation_bpm"]))
        elif row["fault"] in FILL_FAULTS and row["fault_start"] >= 0:
            _fill(bundle, profile, sources[wid].read(), row, out)


def _fill(bundle, profile, act, row, out: dict) -> None:
    clean = np.asarray(row["hr_clean"], dtype=np.float64)
    if len(clean) != len(act.timestamp):
        out["fill_misaligned"] += 1  # the reader dropped or merged samples: steps differ
        return
    span = np.zeros(len(clean), dtype=bool)
    span[int(row["fault_start"]) : int(row["fault_end"])] = True
    f = check_activity(bundle, act, profile).frame
    filled = f["hr_filled"].to_numpy(np.float64)[span]
    lo, hi = (
        f["hr_filled_p10"].to_numpy(np.float64)[span],
        f["hr_filled_p90"].to_numpy(np.float64)[span],
    )
    truth = clean[span]
    rep = f["filled"].to_numpy()[span]
    acc = out["fill"].setdefault(row["fault"], {"runs": 0, "err": [], "cov": [], "rep": []})
    acc["runs"] += 1
    acc["err"] += list(np.abs(filled - truth))
    acc["cov"] += list((truth >= lo) & (truth <= hi))
    acc["rep"] += list(rep)


def _pool(accs: list[dict]) -> dict:
    return {
        k: sum((a[k] for a in accs), 0 if k == "runs" else [])
        for k in ("runs", "err", "cov", "rep")
    }


def _fill_stats(a: dict) -> dict:
    err, cov, rep = (np.asarray(a[k], dtype=np.float64) for k in ("err", "cov", "rep"))
    r = rep > 0
    return {
        "runs": a["runs"], "span_steps": len(err), "share_filled": float(r.mean()) if len(r) else None,
        "mae_span": float(err.mean()) if len(err) else None,
        "mae_filled": float(err[r].mean()) if r.any() else None,
        "band_coverage_filled": float(cov[r].mean()) if r.any() else None,
        "band_coverage_span": float(cov.mean()) if len(cov) else None,
    }  # fmt: skip


def _deviation_stats(dev: np.ndarray, dev10: np.ndarray) -> dict:
    """How far ordinary runs' deviations scatter, and what any fixed threshold on the
    deviation (BPM, the same for every runner) would find of the +10 BPM runs at a given
    false-alarm rate: the check's ceiling without a better expectation."""
    if len(dev) == 0:
        return {}
    mad = float(1.4826 * np.median(np.abs(dev - np.median(dev))))
    best = {}
    for rate in (0.02, 0.05):
        t = float(np.quantile(np.abs(dev), 1.0 - rate))  # |dev| > t on `rate` of ordinary runs
        best[f"{rate:g}"] = {"threshold_bpm": round(t, 2), "detected": float(np.mean(dev10 > t))}
    return {"deviation_sd_bpm": float(dev.std()), "deviation_robust_sd_bpm": mad,
            "fixed_threshold_detection_at_false_alarm": best}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", default="models/bundle")
    ap.add_argument("--users", type=int, default=0, help="the first N test runners (0: all)")
    ap.add_argument(
        "--fault-free",
        action="store_true",
        help="profile only the fault-free runs (a diagnosis: the history without sensor faults)",
    )
    args = ap.parse_args()
    t0 = time.time()
    bundle = load_bundle(Path(args.bundle))
    ev = pd.read_parquet("data/eval/workouts.parquet")
    users = sorted(ev.loc[ev["split"] == "test", "user_id"].unique())
    if args.users:
        users = users[: args.users]
    cols = ["line", "workout_id", "user_id", "sport", "fault", "fault_start", "fault_end",
            "level_bpm", "change_day", "change_bpm", "hr_clean"]  # fmt: skip
    truth = pd.read_parquet("data/raw/simulated_truth.parquet", columns=cols)
    truth = truth[truth["user_id"].isin(users)].set_index("workout_id", drop=False)
    lines = set(truth["line"])
    by_user: dict[int, list[dict]] = {}
    for item in iter_raw("data/raw/simulated.json"):
        w = item.workout
        if item.line in lines and w is not None and w.get("sport") == "run" and _aligned(w):
            by_user.setdefault(int(w["userId"]), []).append(w)
    out: dict = {"level_err": [], "reference_err": [], "level_sd": [], "flat_err": [], "expected_err": [],
                 "usual": [], "shift_dev": [], "changes": [], "false_alarm": [],
                 "deviation": [], "deviation10": [],
                 "detected": [], "fill": {}, "fill_misaligned": 0}  # fmt: skip
    for u in users:
        runs = by_user.get(u, [])
        if args.fault_free:
            runs = [w for w in runs if truth.loc[int(w["id"]), "fault"] == "none"]
        if runs:
            _runner(bundle, runs, truth, out)
    ch = out["changes"]
    res = {
        "runners": len(users), "seconds": round(time.time() - t0, 1),
        "level_mae_bpm": float(np.mean(out["level_err"])), "level_runs": len(out["level_err"]),
        "expected_mae_bpm": float(np.mean(out["expected_err"])),
        "reference_mae_bpm": float(np.mean(out["reference_err"])),
        "flat_line_mae_bpm": float(np.mean(out["flat_err"])),
        "true_level_sd_within_runner_bpm": float(np.mean(out["level_sd"])),
        "changes_ge_10": len(ch), "changes_found_within_3": sum(c["found"] for c in ch),
        "changes_found_ever": sum(c["ever"] for c in ch),
        "change_sizes": [round(c["size"], 1) for c in ch],
        "check_runs": len(out["false_alarm"]),
        "false_alarm_rate": float(np.mean(out["false_alarm"])) if out["false_alarm"] else None,
        "usual_bpm_median": float(np.median(out["usual"])) if out["usual"] else None,
        "shift10_deviation_gain_bpm": float(np.mean(out["shift_dev"])) if out["shift_dev"] else None,
        "shift10_detected_rate": float(np.mean(out["detected"])) if out["detected"] else None,
        **_deviation_stats(np.array(out["deviation"]), np.array(out["deviation10"])),
        "fill_misaligned_runs": out["fill_misaligned"],
        "fill": {k: _fill_stats(v) for k, v in sorted(out["fill"].items())},
        "fill_all": _fill_stats(_pool(list(out["fill"].values()))),
    }  # fmt: skip
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
