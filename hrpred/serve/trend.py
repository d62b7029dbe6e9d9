"""`hrpred trend`: a runner's history over time, from their profile (or an export, profiled
first): per run, in start order,
- `level_bpm`: the run's mean residual against the population model (its record's
  `cold_sum / n`): how much higher or lower the runner's HR was than the population's at the
  same route and pace: the runner's level that day (lower is fitter, or a calmer heart);
- `expected_bpm`: the level the runner's earlier runs predicted for it (its plan's offset:
  the personalisation rule over the runs after the latest level change), `deviation_bpm` =
  level - expected and `usual_bpm`, the usual size of that deviation so far
  (`hrpred.serve.check.usual_spread`); `flag` is `above` or `below` beyond CHECK_Z usual
  spreads (the check's verdict for each run);
- `change_bpm`: at the first run of a new level, the shift the level-change detector
  (`hrpred.personal.change`, through each run's plan) found, and `change_found_at` the run
  whose plan first found it;
- the decoupling of each run (`hrpred.serve.drift`): model-based (`decoupling_model_bpm`)
  beside the classic Pa:HR ratio (`decoupling_pa_hr_pct`);
- `reference_bpm`: the runner's level at a standard effort, the same for every run: the
  personal (headline) prediction of a reference run (flat ground, REFERENCE_SPEED_KMH for
  REFERENCE_MINUTES, the serving code path) made from the runs up to and including this one,
  minus the population's prediction of it (mean over the run), with the workout-average band
  of that prediction (`reference_lo_bpm`, `reference_hi_bpm`; NaN for a bundle without a
  calibrated band). Unlike `level_bpm` it does not depend on the day's route, pace or
  weather, and it moves only as fast as the personalisation does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hrpred.bundle.runtime import Bundle
from hrpred.serve.check import CHECK_Z, usual_spread
from hrpred.serve.inputs import Grid, grid_features
from hrpred.serve.personalise import earlier_runs, personalise
from hrpred.serve.profile import Profile

TREND_COLUMNS = (
    "run", "date", "file", "source", "duration_min", "distance_km", "level_bpm",
    "expected_bpm", "deviation_bpm", "usual_bpm", "flag", "change_bpm", "change_found_at",
    "reference_bpm", "reference_lo_bpm", "reference_hi_bpm",
    "decoupling_model_bpm", "decoupling_pa_hr_pct",
)  # fmt: skip
REFERENCE_SPEED_KMH = 10.0  # the trend's standard effort: flat ground at this speed ...
REFERENCE_MINUTES = 30.0  # ... for this long


def _nan(x: Any) -> float:
    return float("nan") if x is None else float(x)


def changes(profile: Profile) -> dict[int, tuple[float, int]]:
    """The level changes the runs' plans found: the index of the first run of each new level
    -> (its shift, BPM; the index of the run whose plan first found it). A change found again
    by later plans (their runs_since one more each run) is the same change."""
    found: dict[int, tuple[float, int]] = {}
    for i, run in enumerate(profile.runs):
        ch = run["plan"]["change"]
        if not ch["found"] or ch["runs_since"] is None:
            continue
        start = i - int(ch["runs_since"])
        if not any(abs(start - s) <= 1 for s in found):
            found[start] = (float(ch["shift_bpm"]), i)
    return found


def reference_features(bundle: Bundle, gender: str | None = None) -> np.ndarray:
    """Unscaled features of the reference run on the bundle's grid (featurize's registry)."""
    n = int(round(REFERENCE_MINUTES * 60.0 / bundle.step_s)) + 1
    t = np.arange(n, dtype=np.float64) * bundle.step_s
    speed, flat = np.full(n, REFERENCE_SPEED_KMH), np.zeros(n)
    grid = Grid(t, speed, flat, bundle.step_s, np.zeros(n, bool), "native", speed, flat)
    return grid_features(list(bundle.features), grid, gender)


def reference_levels(bundle: Bundle, profile: Profile, gender: str | None = None) -> np.ndarray:
    """Per profile run [n, 3]: the reference run's headline prediction from the runs up to and
    including it minus the population's (mean BPM), and its workout-average band's ends (NaN
    without a calibrated band), by the engine `hrpred predict --profile` uses."""
    feats = reference_features(bundle, gender)
    pop, spread = bundle.predict_spread(feats)
    pop = np.asarray(pop, np.float64)
    base = float(pop.mean())
    starts, summaries = profile.summaries()
    records = profile.records()
    cal = bundle.calibration
    ref = None if cal is None else cal.runner_ref
    out = np.full((len(starts), 3), np.nan)
    for i, start in enumerate(starts):
        after = float(np.nextafter(start, np.inf))  # this run and the ones before it
        earlier = earlier_runs(starts, after, bundle.history_runs)
        done = personalise(bundle, summaries, starts, records, earlier, after, feats, pop,
                           spread, ref)  # fmt: skip
        out[i, 0] = float(done.curves.headline.mean()) - base
        if cal is not None:
            band = bundle.band(done.curves.headline, done.spread, done.plan.used, done.plan.factor)
            out[i, 1:] = float(band.average_lower) - base, float(band.average_upper) - base
    return out


def trend_table(profile: Profile, bundle: Bundle, gender: str | None = None) -> pd.DataFrame:
    """One row per profile run (TREND_COLUMNS; runs numbered from 1 in start order), with the
    bundle the profile was built with (`gender`: the reference run's, as predict takes it)."""
    cfg = bundle.personal.change
    reference = reference_levels(bundle, profile, gender)
    rows = []
    found = changes(profile)
    for i, run in enumerate(profile.runs):
        rec, plan = run["record"], run["plan"]
        level = rec["cold_sum"] / rec["n"] if rec["n"] > 0 else float("nan")
        expected = plan["offset_bpm"] if plan["earlier_runs"] > 0 else float("nan")
        usual, n_usual = usual_spread(profile, float(run["start_time"]), cfg)
        dev = level - expected
        flag = ""
        if n_usual > 0 and np.isfinite(dev) and abs(dev) > CHECK_Z * usual:
            flag = "above" if dev > 0 else "below"
        shift, at = found.get(i, (float("nan"), -1))
        drift = run.get("drift", {})
        rows.append(
            {
                "run": i + 1, "date": run["date"], "file": run["file"],
                "source": run.get("source", run["file"]),
                "duration_min": run["duration_s"] / 60.0, "distance_km": run["distance_km"],
                "level_bpm": level, "expected_bpm": expected, "deviation_bpm": dev,
                "usual_bpm": usual if n_usual > 0 else float("nan"), "flag": flag,
                "change_bpm": shift, "change_found_at": at + 1 if at >= 0 else None,
                "reference_bpm": reference[i, 0], "reference_lo_bpm": reference[i, 1],
                "reference_hi_bpm": reference[i, 2],
                "decoupling_model_bpm": _nan(drift.get("model_bpm")),
                "decoupling_pa_hr_pct": _nan(drift.get("pa_hr_pct")),
            }
        )  # fmt: skip
    table = pd.DataFrame(rows, columns=list(TREND_COLUMNS))
    table["change_found_at"] = table["change_found_at"].astype("Int64")
    return table


def format_trend(table: pd.DataFrame, last: int = 12) -> str:
    """The trend as the command prints it: the span, the level now, the changes, the flagged
    runs, the decoupling, and the last `last` runs."""
    if table.empty:
        return "no runs"
    lines = [
        f"{len(table)} runs from {table['date'].iloc[0][:10]} to {table['date'].iloc[-1][:10]}"
    ]
    recent = table["level_bpm"].tail(10)
    lines.append(
        f"level (HR vs the population at the same route and pace): {recent.mean():+.1f} BPM "
        f"over the last {len(recent)} runs, {table['level_bpm'].mean():+.1f} over all"
    )
    ref = table["reference_bpm"]
    if ref.notna().any():
        now = table.iloc[-1]
        band = ""
        if np.isfinite(now["reference_lo_bpm"]):
            band = f" (band {now['reference_lo_bpm']:+.1f} to {now['reference_hi_bpm']:+.1f})"
        lines.append(
            f"level at a standard effort (flat, {REFERENCE_SPEED_KMH:g} km/h, "
            f"{REFERENCE_MINUTES:g} min) vs the population: {now['reference_bpm']:+.1f} BPM "
            f"now{band}, {ref.iloc[0]:+.1f} after the first run"
        )
    ch = table[table["change_bpm"].notna()]
    for _, r in ch.iterrows():
        lines.append(
            f"level change from run {r['run']} ({r['date'][:10]}): {r['change_bpm']:+.1f} BPM "
            f"(found at run {r['change_found_at']}, {r['change_found_at'] - r['run']} run(s) "
            "later)"
        )
    if ch.empty:
        lines.append("no level change found")
    flagged = table[table["flag"] != ""]
    lines.append(
        f"{len(flagged)} run(s) beyond {CHECK_Z:g} usual spreads of what the earlier runs "
        f"predicted: {', '.join(f'{r.run} ({r.flag})' for r in flagged.itertuples()) or 'none'}"
    )
    dm, dp = table["decoupling_model_bpm"], table["decoupling_pa_hr_pct"]
    if dm.notna().any():
        lines.append(
            f"decoupling (second half vs first): model {dm.mean():+.1f} BPM on average "
            f"(route and pace accounted for), Pa:HR {dp.mean():+.1f}%"
        )
    lines.append(f"{'run':>5} {'date':<10} {'level':>7} {'expect':>7} {'flag':<6} "
                 f"{'dec.BPM':>7} {'Pa:HR%':>7}  file")  # fmt: skip
    for r in table.tail(last).itertuples():
        lines.append(
            f"{r.run:>5} {r.date[:10]:<10} {r.level_bpm:>+7.1f} {r.expected_bpm:>+7.1f} "
            f"{r.flag:<6} {r.decoupling_model_bpm:>+7.1f} {r.decoupling_pa_hr_pct:>+7.1f}  "
            f"{r.file}"
        )
    return "\n".join(lines)


def save_trend_figure(table: pd.DataFrame, out: Any, title: str) -> None:
    """The trend as a PNG (`trend_figure`)."""
    trend_figure(table, title).savefig(out, dpi=100)


def trend_figure(table: pd.DataFrame, title: str) -> Any:
    """The trend's figure: level per run with what was expected, the changes and the flagged
    runs; below it the two decouplings."""
    from matplotlib.figure import Figure  # deferred: matplotlib; no pyplot, no global state

    dates = pd.to_datetime(table["date"])
    fig = Figure(figsize=(10, 6))
    ax, bx = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    ax.plot(dates, table["level_bpm"], "o", ms=3, color="tab:blue", label="level (run)")
    ax.plot(dates, table["expected_bpm"], "-", color="tab:gray", label="expected from earlier")
    ax.plot(dates, table["reference_bpm"], "-", color="tab:purple",
            label=f"at flat {REFERENCE_SPEED_KMH:g} km/h (with band)")  # fmt: skip
    ax.fill_between(dates, table["reference_lo_bpm"], table["reference_hi_bpm"],
                    color="tab:purple", alpha=0.15, lw=0)  # fmt: skip
    flagged = table["flag"] != ""
    ax.plot(dates[flagged], table["level_bpm"][flagged], "o", ms=7, mfc="none",
            color="tab:red", label="flagged")  # fmt: skip
    for d in dates[table["change_bpm"].notna()]:
        ax.axvline(d, color="tab:orange", ls="--", lw=1)
    ax.set_ylabel("HR vs population (BPM)")
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title)
    bx.plot(dates, table["decoupling_model_bpm"], "o", ms=3, label="model (BPM)")
    bx2 = bx.twinx()
    bx2.plot(dates, table["decoupling_pa_hr_pct"], "x", ms=3, color="tab:green", label="Pa:HR %")
    bx.set_ylabel("model (BPM)")
    bx2.set_ylabel("Pa:HR (%)")
    bx.axhline(0, color="k", lw=0.5)
    fig.tight_layout()
    return fig
