"""Predict the heart-rate curve of a runner's own activity file with an exported bundle.

Steps (1-3: `hrpred.serve.inputs`; 5: `hrpred.serve.summary`):
1. the file's channels on a uniform grid at the bundle's sampling step (the training data's
   typical step), i.e. the recording a device logging every step would have made: every
   channel (native speed, positions, distance, altitude) at the grid times by linear
   interpolation, like the training data's point samples (no averaging: clean averages
   nothing either; GPS- and distance-derived speed are a step's average by construction);
   inside recording gaps (pauses) native speed is the gap's average (distance covered /
   time, 0 if unknown), which positions or distance interpolated across the gap give too;
2. speed on that grid with the clean stage's rules, which the bundle carries (params.yaml
   clean.speed; `hrpred.timeseries.speed_from_recording`: native, distance, GPS; spikes,
   cap, causal smoothing);
3. features with `hrpred.features.compute_features` and the bundle's feature list (the
   featurize stage calls the same function);
4. one full-length forward pass (the LSTM takes any length) and linear interpolation of the
   predicted HR back to the file's own timestamps;
5. a summary: average/max predicted HR, time in 5 HR zones, drift between halves and, when
   the file has HR, the error against it;
6. with a runner's profile (`hrpred.serve.profile`, built with the same bundle), the
   personalised predictions beside the population one, by the engine the evaluate stage scores
   with (`hrpred.serve.personalise`, `hrpred.personal.engine`): the level-change detector
   keeps the earlier runs after the latest change; population + offset from their errors;
   for a history bundle the network reading them + its residual correction; and the headline,
   the three weighted by their errors on the earlier runs. Only runs that started strictly
   before this one are used, and this run's recorded HR is read only for the error in the
   summary;
7. with a bundle that carries a calibrated band (`Bundle.calibration`), the 80% band of the
   headline prediction and, beside it, of the population one (see "The band" below).

The band: per grid step, center -/+ q * spread * factor and the workout-average band
(`Bundle.band`, i.e. `hrpred.uncertainty.band_of`, the function evaluate scores the band
with): the network's spread (with the plan's context), q the conformal multiplier of the
history bucket (the number of earlier runs the plan used: those after the latest level change;
0 for the population prediction) and factor the runner scale (from the scores of the
profile's earlier runs, as the evaluate stage scored the band, times
`personal.change.break_widen` when the run comes `break_days` or more after the latest
earlier run; 1 for the population curve; the ONNX graph's hr_p10/hr_p90 are the band with
factor 1). The max's band is (max of the lower curve, max of the upper curve); the time in
each zone is a range: the least and most of the times on the lower, central and upper curves
(an indication, not a calibrated interval). `frame` gains `hr_p10`, `hr_p50` (= the headline
column) and `hr_p90`, the band on the file's points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hrpred.bundle.format import BundleError
from hrpred.bundle.runtime import Bundle, load_bundle
from hrpred.io.activity import Activity
from hrpred.io.limits import MIN_TIMESTAMP_S
from hrpred.personal.engine import after_break
from hrpred.serve.inputs import Grid, grid_features, resample_activity
from hrpred.serve.profile import Profile, check_compatible, plan_json
from hrpred.serve.summary import (
    Curve,
    band_summary,
    check_range,
    curve_summary,
    summarize,
    zone_bounds,
)

__all__ = ["Bundle", "BundleError", "Prediction", "load_bundle", "predict_activity"]

HEADLINE_COLUMNS = {"population": "hr_pred", "personal": "hr_personal"}
BAND_COLUMNS = ("hr_p10", "hr_p50", "hr_p90")  # the headline's band on the file's points


@dataclass
class Prediction:
    """Per-point predictions (`frame`), the grid the model saw, a summary and warnings."""

    frame: pd.DataFrame
    summary: dict[str, Any]
    warnings: list[str]
    grid: Grid
    features: np.ndarray  # [n_grid, F] unscaled, what the model read
    hr_grid: np.ndarray  # [n_grid] predicted HR on the grid (BPM)


def change_note(change: dict[str, Any], used: int, earlier: int) -> str:
    """What the level-change detector did, in words."""
    if not change["found"]:
        return f"no level change in the {earlier} earlier run(s): using them all"
    return (
        f"level change {change['runs_since']} run(s) ago ({change['shift_bpm']:+.0f} BPM): "
        f"using the {used} run(s) since"
    )


def _personalise(
    bundle: Bundle,
    profile: Profile,
    activity: Activity,
    feats: np.ndarray,
    grid: Grid,
    population: Curve,
    bounds: list[float],
    warns: list[str],
) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Curve]]:
    """Personalised per-point HR (`hr_offset`, `hr_learned` for a history bundle, and
    `hr_personal`: the headline), their summaries and the headline curve the band goes around
    (`personal`), from the profile's runs that started strictly before this one
    (`Profile.personalise`: the engine evaluate scores with). Reads the profile's records,
    never this run's recorded HR."""
    check_compatible(profile, bundle)
    start = float(activity.timestamp[0])
    if start < MIN_TIMESTAMP_S:
        warns.append("the file has no date (relative times): no earlier run can be used")
        start = -np.inf
    cal = bundle.calibration
    done, later = profile.personalise(
        bundle, start, feats, population.hr, population.spread,
        None if cal is None else cal.runner_ref,
    )  # fmt: skip
    if later and np.isfinite(start):  # without a date, the warning above says it all
        warns.append(
            f"{later} profile run(s) did not start before this run: not used (only earlier "
            "runs personalise a prediction)"
        )
    plan = plan_json(done.plan, done.context_runs)
    history = {
        "earlier_runs": done.plan.earlier,
        "later_runs_left_out": later,
        "used_runs": done.plan.used,
        "context_runs": done.context_runs,
        "change": plan["change"],
        "weights": plan["weights"],
        "note": change_note(plan["change"], done.plan.used, done.plan.earlier),
        "days_since_latest_run": done.plan.gap_days,  # None without an earlier run
    }
    change_cfg = bundle.personal.change
    if after_break(change_cfg, done.plan):
        history["note"] += (
            f"; {done.plan.gap_days:.0f} days since your latest earlier run: band x"
            f"{change_cfg.break_widen:.2f} (a level may have moved)"
        )
    summary: dict[str, Any] = {"history": history}
    columns: dict[str, np.ndarray] = {}
    c = done.curves
    columns["hr_offset"], summary["offset"] = curve_summary(grid, c.offset, bounds, activity)
    summary["offset"].update(offset_bpm=done.plan.offset, runs=done.plan.offset_runs)
    if bundle.history is not None:
        columns["hr_learned"], summary["learned"] = curve_summary(grid, c.learned, bounds, activity)
        summary["learned"].update(
            context_runs=done.context_runs, residual_bpm=done.plan.residual,
            residual_runs=done.plan.residual_runs,
        )  # fmt: skip
    columns["hr_personal"], summary["personal"] = curve_summary(grid, c.headline, bounds, activity)
    summary["personal"].update(weights=plan["weights"])
    headline = Curve(
        c.headline, done.spread, done.plan.used, done.plan.factor, done.plan.factor_runs
    )
    return columns, summary, {"personal": headline}


def predict_activity(
    bundle: Bundle,
    activity: Activity,
    gender: str | None = None,
    max_hr: float | None = None,
    rest_hr: float | None = None,
    age: float | None = None,
    profile: Profile | None = None,
) -> Prediction:
    """Predicted HR for every point of `activity`, plus a summary (see the module doc).

    With a `profile` (`hrpred.serve.profile`), also the personalised predictions from the
    profile's runs that started strictly before this one (`hrpred.serve.personalise`): the
    offset personaliser (population + offset; column `hr_offset`, `summary["offset"]`), for a
    history bundle the learned one (network with the runs after the latest level change as
    context + residual correction; `hr_learned`, `summary["learned"]`), and the headline
    (their weighted mean by their errors on the earlier runs; `hr_personal`,
    `summary["personal"]`); `summary["history"]` counts the runs used and left out and says
    what the level-change detector did.

    `summary["headline"]` names the headline (`personal` with a profile, else `population`).
    With a calibrated bundle, `summary["band"]` (population) and `summary["personal"]["band"]`
    hold their bands (`band_summary`: the headline's spread scaled by the runner factor, its
    history bucket the runs after the latest level change) and `frame` the headline's
    `hr_p10`, `hr_p50`, `hr_p90`; without one `summary["band"]` is None and nothing else
    changes."""
    max_hr = check_range("max HR", max_hr, 100, 240)
    rest_hr = check_range("resting HR", rest_hr, 25, 120)
    age = check_range("age", age, 5, 100)
    if gender is not None and gender.strip().lower() not in ("male", "female", "unknown"):
        raise ValueError(f"gender must be male, female or unknown, got {gender!r}")
    bounds, basis, top = zone_bounds(max_hr, rest_hr, age)
    calibrated = bundle.calibration is not None  # BundleError when malformed

    warns = list(activity.warnings)
    grid = resample_activity(activity, bundle.step_s, bundle.speed)
    warns += grid.warnings
    if gender is None and "gender" in bundle.features:
        warns.append("gender not given: the model uses 'unknown' (pass --gender)")
    feats = grid_features(bundle.features, grid, gender)
    hr32, spread = bundle.predict_spread(feats)
    hr_grid = np.asarray(hr32, dtype=np.float64)
    if len(hr_grid) > bundle.seq_len:
        warns.append(
            f"longer than the training rows ({bundle.seq_len} steps, "
            f"{bundle.seq_len * bundle.step_s / 60:.0f} min): the end is extrapolated"
        )

    t = activity.timestamp
    hr_points = np.interp(t, grid.timestamp, hr_grid)
    columns: dict[str, Any] = {
        "t_s": t - t[0],
        "timestamp": t,
        "speed_kmh": grid.point_speed_kmh,
        "altitude_m": grid.point_altitude_m
        if grid.point_altitude_m is not None
        else np.full(len(t), np.nan),
        "hr_pred": hr_points,
    }
    if activity.heart_rate is not None:
        columns["hr_true"] = activity.heart_rate
    frame = pd.DataFrame(columns)
    summary = summarize(grid, hr_grid, bounds, activity.heart_rate, hr_points)
    summary["zone_basis"] = basis
    summary["zone_max_hr"] = top
    summary["gender"] = gender or "unknown"
    summary["source"] = activity.source
    curves = {"population": Curve(hr_grid, spread, 0, 1.0, 0)}
    if profile is not None:
        columns, personal, banded = _personalise(
            bundle, profile, activity, feats, grid, curves["population"], bounds, warns
        )
        for name, values in columns.items():
            frame[name] = values
        summary.update(personal)
        curves.update(banded)
    headline = "personal" if "personal" in summary else "population"
    summary["headline"] = headline
    summary["band"] = None
    if calibrated:
        for name, curve in curves.items():
            band, lo, hi = band_summary(bundle, grid, curve, bounds)
            (summary if name == "population" else summary[name])["band"] = band
            if name == headline:
                frame["hr_p10"] = np.interp(t, grid.timestamp, lo)
                frame["hr_p50"] = frame[HEADLINE_COLUMNS[headline]]
                frame["hr_p90"] = np.interp(t, grid.timestamp, hi)
    return Prediction(
        frame=frame, summary=summary, warnings=warns, grid=grid, features=feats, hr_grid=hr_grid
    )
