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
   personalised predictions beside the population one: population + offset from the earlier
   runs' errors, and for a history bundle the network reading the earlier runs + its residual
   correction (as the evaluate stage scores them); only runs that started strictly before
   this one are used, and this run's recorded HR is read only for the error in the summary;
7. with a bundle that carries a calibrated band (issue 14, `Bundle.calibration`), the 80% band
   of the headline prediction (the most personal one: learned, else + offset, else
   population) and, beside it, of the population one (see "The band" below).

The band: per grid step, center -/+ q * spread * factor (`Bundle.step_band` of the scaled
spread), the network's spread, q the conformal multiplier of the history bucket (the number of
earlier runs the network read as context; 0 for the population prediction) and factor the
runner scale of the calibration (`hrpred.uncertainty`): for the learned personalised curve,
from the scores of the profile's runs that started strictly before this one
(`hrpred.serve.profile.profile_runner_factor`), as the evaluate stage scored the band; 1 for
the population and the + offset curves, for a calibration without a runner scale (a bundle
exported before it) and without an earlier run (the ONNX graph's hr_p10/hr_p90 are the band
with factor 1). A personalised curve is the network's output + a constant (residual
correction, or the offset for a population bundle, whose network reads no history: bucket 0),
and its band is moved by the same constant. The workout-average band is `Bundle.average_band`
of the same scaled spread; the max's band is (max of the lower curve, max of the upper curve); the
time in each zone is a range: the least and most of the times on the lower, central and upper
curves (an indication, not a calibrated interval). `frame` gains `hr_p10`, `hr_p50` (= the
headline column) and `hr_p90`, the band on the file's points. The + offset curve of a history
bundle gets no band (the calibration is the learned model's).
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
from hrpred.serve.inputs import Grid, grid_features, resample_activity
from hrpred.serve.profile import (
    Profile,
    check_compatible,
    profile_context,
    profile_offset,
    profile_runner_factor,
)
from hrpred.serve.summary import (
    Curve,
    band_summary,
    check_range,
    curve_summary,
    summarize,
    zone_bounds,
)

__all__ = ["Bundle", "BundleError", "Prediction", "load_bundle", "predict_activity"]

HEADLINE_COLUMNS = {"population": "hr_pred", "offset": "hr_offset", "personal": "hr_personal"}
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


def _personalise(
    bundle: Bundle,
    profile: Profile,
    activity: Activity,
    feats: np.ndarray,
    grid: Grid,
    cold: Curve,
    bounds: list[float],
    warns: list[str],
) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Curve]]:
    """Personalised per-point HR (`hr_offset`, and `hr_personal` for a history bundle), their
    summaries and the personalised curve the band goes around (`personal` for a history
    bundle, else `offset`), from the profile's runs that started strictly before this one.

    Offset: the cold (population) prediction `cold` + the bundle's offset rule over those
    runs' cold residuals. Learned (history bundle): the network with those runs as context +
    the bundle's residual correction over their personalised residuals, its band's spread
    scaled by the calibration's runner scale over their scores (`profile_runner_factor`; 1
    without a band). Reads the profile's stored residuals and scores, never this run's
    recorded HR."""
    check_compatible(profile, bundle)
    start = float(activity.timestamp[0])
    if start < MIN_TIMESTAMP_S:
        warns.append("the file has no date (relative times): no earlier run can be used")
        start = -np.inf
    ctx, used, later = profile_context(profile, start, int((bundle.history or {}).get("k_max", 0)))
    earlier = len(profile.runs) - later
    if later and np.isfinite(start):  # without a date, the warning above says it all
        warns.append(
            f"{later} profile run(s) did not start before this run: not used (only earlier "
            "runs personalise a prediction)"
        )
    columns: dict[str, np.ndarray] = {}
    summary: dict[str, Any] = {"history": {"earlier_runs": earlier, "later_runs_left_out": later}}
    offset, n_off = profile_offset(profile, start, bundle.personaliser("offset"), "cold")
    # the network reads no history: the cold bucket, no runner scale
    curves = {"offset": Curve(cold.hr + offset, cold.spread, 0, 1.0, 0)}
    columns["hr_offset"], summary["offset"] = curve_summary(
        grid, curves["offset"].hr, bounds, activity
    )
    summary["offset"].update(offset_bpm=offset, runs=n_off)
    if bundle.history is not None:
        context = (ctx.values[0], ctx.mask[0])
        net, spread = bundle.predict_spread(feats, context=context)
        corr, n_res = profile_offset(profile, start, bundle.personaliser("residual"), "personal")
        n_context = int(bundle.context_counts(context, 1)[0])
        cal = bundle.calibration
        factor, n_factor = (1.0, 0) if cal is None else profile_runner_factor(profile, start, cal)
        curves = {
            "personal": Curve(
                np.asarray(net, np.float64) + corr, spread, n_context, factor, n_factor
            )
        }
        columns["hr_personal"], summary["personal"] = curve_summary(
            grid, curves["personal"].hr, bounds, activity
        )
        summary["personal"].update(context_runs=used, residual_bpm=corr, residual_runs=n_res)
    return columns, summary, curves


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
    profile's runs that started strictly before this one: the offset personaliser (population
    + offset; column `hr_offset`, `summary["offset"]`) and, for a history bundle, the learned
    one (network with those runs as context + residual correction; `hr_personal`,
    `summary["personal"]`); `summary["history"]` counts the runs used and left out.

    `summary["headline"]` names the most personal prediction (`personal`, `offset` or
    `population`). With a calibrated bundle, `summary["band"]` (population) and the headline's
    `summary[headline]["band"]` hold its band (`band_summary`; the learned personalised band
    scaled by the runner factor, `runner_factor` and `runner_runs` there) and `frame` the
    headline's `hr_p10`, `hr_p50`, `hr_p90` (that scaled band for a learned headline);
    without one `summary["band"]` is None and nothing else changes."""
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
    headline = next((n for n in ("personal", "offset") if n in summary), "population")
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
