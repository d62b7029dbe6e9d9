"""Predict the heart-rate curve of a runner's own activity file with an exported bundle.

Steps (the inputs the model trained on; tests/test_skew.py measures the remaining skew):
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

What still differs from training, and why: the clean path run on the grid's points gives
the same features (tests/test_skew.py), except inside recording gaps, where a training
recording has one long step and the grid has points with the gap's average speed (the LSTM
counts steps, so the gap needs them); and the grid is uniform where the training data's
steps vary around their mean.

HR zones: Z1 < 60 %, Z2 60-70 %, Z3 70-80 %, Z4 80-90 %, Z5 >= 90 % of the maximum HR, or of
the heart-rate reserve above `rest_hr` (Karvonen) when a resting HR is given. The maximum HR
is `max_hr` if given, else 208 - 0.7 * age (Tanaka) if `age` is given, else DEFAULT_MAX_HR.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from hrpred.clean.pauses import PAUSE_MIN_S  # a gap over this (and 3 steps): a pause, speed 0
from hrpred.export.bundle import Bundle, BundleError, load_bundle
from hrpred.io.limits import MAX_DURATION_S, MAX_POINTS
from hrpred.io.userfiles import Activity, ActivityError
from hrpred.timeseries import SpeedConfig, haversine_km, speed_from_recording

if TYPE_CHECKING:
    import pandas as pd

    from hrpred.serve.profile import Profile

__all__ = [
    "Bundle",
    "BundleError",
    "Grid",
    "Prediction",
    "load_bundle",
    "predict_activity",
    "resample_activity",
    "grid_features",
    "on_grid",
]

DEFAULT_MAX_HR = 190.0  # BPM, used for zones when neither max_hr nor age is given
ZONE_FRACTIONS = (0.6, 0.7, 0.8, 0.9)  # lower bounds of Z2..Z5 (fraction of max HR or HRR)
ZONES = ("Z1", "Z2", "Z3", "Z4", "Z5")
MIN_DURATION_S = 60.0  # shorter files cannot give a meaningful HR curve
SHORT_WARN_S = 600.0  # HR needs minutes to settle: warn below 10 min
MIN_DISTANCE_M = 50.0  # "no movement": the whole file covers less than this
MIN_HR_POINTS = 10  # recorded-HR samples needed to report an error against it


@dataclass
class Grid:
    """An activity resampled on the training grid (uniform step)."""

    timestamp: np.ndarray  # Unix s (t0 + k * step)
    speed_kmh: np.ndarray
    altitude_m: np.ndarray
    step_s: float
    paused: np.ndarray  # bool, grid steps inside a recording gap (speed = gap average)
    speed_source: str  # native | distance | gps
    point_speed_kmh: np.ndarray  # grid speed at the file's own points (linear)
    point_altitude_m: np.ndarray | None  # altitude at the file's points, None if absent
    warnings: list[str] = field(default_factory=list)
    # recording gaps longer than the pause threshold: (start, length) in s from the start
    pauses: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class Prediction:
    """Per-point predictions (`frame`), the grid the model saw, a summary and warnings."""

    frame: pd.DataFrame
    summary: dict[str, Any]
    warnings: list[str]
    grid: Grid
    features: np.ndarray  # [n_grid, F] unscaled, what the model read
    hr_grid: np.ndarray  # [n_grid] predicted HR on the grid (BPM)


# --------------------------------------------------------------------------- resampling


NO_SPEED = {  # speed_from_recording reasons, for the one-line error
    "no_gps": "no usable speed, distance or GPS positions",
    "gps_stuck": "no movement (the GPS position never changes)",
    "gps_spikes": "too many GPS jumps to derive speed",
    "gps_length": "GPS positions do not cover every point",
    "gps_nonfinite": "GPS positions missing",
    "gps_range": "GPS positions out of range",
}


def on_grid(t: np.ndarray, x: np.ndarray | None, grid_t: np.ndarray) -> np.ndarray | None:
    """x at the grid times by linear interpolation over its finite samples (None if < 2)."""
    if x is None:
        return None
    ok = np.isfinite(x)
    if ok.sum() < 2:
        return None
    return np.interp(grid_t, t[ok], x[ok])


def _gap_speed(activity: Activity, t0: float, t1: float, max_kmh: float) -> float:
    """Average speed (km/h) over a recording gap from distance or positions; 0 if unknown."""
    t = activity.timestamp
    ends = np.array([t0, t1])
    dist = on_grid(t, activity.distance, ends)
    if dist is not None:
        covered_km = max(float(dist[1] - dist[0]), 0.0) / 1000.0
    else:
        lat, lon = on_grid(t, activity.latitude, ends), on_grid(t, activity.longitude, ends)
        if lat is None or lon is None:
            return 0.0
        covered_km = float(haversine_km(lat[0], lon[0], lat[1], lon[1]))
    return min(covered_km / (t1 - t0) * 3600.0, max_kmh)


def resample_activity(activity: Activity, step_s: float, speed: SpeedConfig) -> Grid:
    """The activity on a uniform grid of `step_s` seconds from its start, speed by `speed`'s
    rules (see the module doc); a file already on that grid keeps its own points."""
    if step_s <= 0:
        raise ValueError(f"sampling step must be positive, got {step_s}")
    t = np.asarray(activity.timestamp, dtype=np.float64)
    warns: list[str] = []
    duration = float(t[-1] - t[0])
    if duration < MIN_DURATION_S:
        raise ActivityError(
            f"{activity.source}: only {duration:.0f} s recorded: need at least "
            f"{MIN_DURATION_S:.0f} s to predict a heart-rate curve"
        )
    if not duration <= MAX_DURATION_S or len(t) > MAX_POINTS:  # read_activity checks both
        raise ActivityError(
            f"{activity.source}: {duration / 3600:.1f} h and {len(t)} points: more than the "
            f"limits ({MAX_DURATION_S / 3600:.0f} h, {MAX_POINTS:,} points; hrpred.io.limits)"
        )
    # sized from the checked duration only: at most MAX_DURATION_S / step_s + 1 steps
    n_grid = int(np.floor(duration / step_s + 1e-9)) + 1
    grid_t = t[0] + step_s * np.arange(n_grid, dtype=np.float64)

    # Recording gaps: auto-pause (the runner stood) or sparse "smart" recording (they ran on).
    pause_s = max(PAUSE_MIN_S, 3.0 * step_s)
    gaps = np.flatnonzero(np.diff(t) > pause_s)
    paused = np.zeros(n_grid, dtype=bool)
    native = on_grid(t, activity.speed, grid_t)
    for g in gaps:
        inside = (grid_t > t[g]) & (grid_t < t[g + 1])
        paused |= inside
        if native is not None:
            native[inside] = _gap_speed(activity, t[g], t[g + 1], speed.max_kmh)
    if gaps.size:
        known = activity.distance is not None or activity.latitude is not None
        warns.append(
            f"{gaps.size} recording gap(s) longer than {pause_s:.0f} s "
            f"({float(np.sum(np.diff(t)[gaps])) / 60:.1f} min in all): speed there = "
            "distance covered / gap time" + ("" if known else " (unknown: 0)")
        )

    lat = on_grid(t, activity.latitude, grid_t)
    lon = on_grid(t, activity.longitude, grid_t)
    dist = on_grid(t, activity.distance, grid_t)
    sp = speed_from_recording(grid_t, native, lat, lon, speed, dist)
    if sp.speed is None:
        why = NO_SPEED.get(sp.reason, sp.reason)
        raise ActivityError(f"{activity.source}: {why}: cannot predict HR without speed")
    if sp.still:
        warns.append(f"{', '.join(sp.still)} speed is zero throughout: using {sp.source}")
    if sp.source != "native":
        warns.append(
            f"speed derived from the {'GPS positions' if sp.source == 'gps' else 'distance channel'}"
        )
    if sp.n_spikes:
        warns.append(
            f"{sp.n_spikes} speed spikes (above {speed.max_kmh:.0f} km/h or far above their "
            "neighbours) replaced by interpolation"
        )
    grid_speed = sp.speed
    altitude = activity.altitude
    grid_alt = on_grid(t, altitude, grid_t)
    if grid_alt is None:
        warns.append("no altitude in the file: assuming flat ground (altitude 0 m)")
        grid_alt = np.zeros(n_grid)

    distance_m = float(np.sum(grid_speed[1:] / 3.6 * step_s))
    if float(np.max(grid_speed)) < speed.min_moving_kmh or distance_m < MIN_DISTANCE_M:
        raise ActivityError(
            f"{activity.source}: no movement (max speed {float(np.max(grid_speed)):.1f} km/h, "
            f"{distance_m:.0f} m): nothing to predict"
        )
    if duration < SHORT_WARN_S:
        warns.append(
            f"short activity ({duration / 60:.1f} min): HR takes minutes to settle, "
            "expect a rough prediction"
        )
    return Grid(
        timestamp=grid_t,
        speed_kmh=grid_speed,
        altitude_m=grid_alt,
        step_s=float(step_s),
        paused=paused,
        pauses=[(float(t[g] - t[0]), float(t[g + 1] - t[g])) for g in gaps],
        speed_source=sp.source,
        point_speed_kmh=np.interp(t, grid_t, grid_speed),
        point_altitude_m=None if altitude is None else np.asarray(altitude, dtype=np.float64),
        warnings=warns,
    )


def grid_features(features: list[str], grid: Grid, gender: str | None) -> np.ndarray:
    """Unscaled features [n, F] of a grid, with the registry featurize uses."""
    from hrpred.features.registry import WorkoutInputs, compute_features

    # the grid covers a pause with steps of its own: mark the first step after each one, where
    # `since_pause` restarts (clean keeps a pause as one long step: the same restart there)
    resume = ~grid.paused & np.r_[False, grid.paused[:-1]]
    inputs = WorkoutInputs.from_arrays(
        grid.timestamp, grid.speed_kmh, grid.altitude_m, gender, resume=resume
    )
    return compute_features(features, inputs)


# --------------------------------------------------------------------------- summary


def zone_bounds(
    max_hr: float | None, rest_hr: float | None, age: float | None
) -> tuple[list[float], str, float]:
    """Lower bounds (BPM) of Z2..Z5, a description of their basis and the max HR used."""
    if max_hr is not None:
        top, basis = float(max_hr), f"max HR {float(max_hr):.0f} (given)"
    elif age is not None:
        top = 208.0 - 0.7 * float(age)
        basis = f"max HR {top:.0f} (208 - 0.7 x age {float(age):.0f})"
    else:
        top, basis = DEFAULT_MAX_HR, f"max HR {DEFAULT_MAX_HR:.0f} (default: pass max HR or age)"
    if rest_hr is not None:
        if rest_hr >= top:
            raise ValueError(f"resting HR {rest_hr:.0f} must be below the max HR {top:.0f}")
        bounds = [float(rest_hr) + f * (top - float(rest_hr)) for f in ZONE_FRACTIONS]
        basis += f", heart-rate reserve above rest HR {float(rest_hr):.0f}"
    else:
        bounds = [f * top for f in ZONE_FRACTIONS]
    return bounds, basis, top


def _check_range(name: str, value: float | None, lo: float, hi: float) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not (lo <= value <= hi):
        raise ValueError(f"{name} {value:g} is outside {lo:g}-{hi:g}")
    return value


def zone_times(hr_grid: np.ndarray, bounds: list[float], step_s: float) -> dict[str, float]:
    """Seconds in Z1..Z5 of a grid curve: each step stands for `step_s`, the last for nothing
    (the file ends there) unless it is the only one."""
    n = len(hr_grid)
    weights = np.full(n, step_s)
    if n > 1:
        weights[-1] = 0.0
    idx = np.searchsorted(np.asarray(bounds), hr_grid, side="right")  # 0..4 = Z1..Z5
    return {z: float(weights[idx == k].sum()) for k, z in enumerate(ZONES)}


def summarize(
    grid: Grid,
    hr_grid: np.ndarray,
    bounds: list[float],
    hr_true: np.ndarray | None,
    hr_pred_points: np.ndarray,
) -> dict[str, Any]:
    """Summary numbers on the uniform grid (time-weighted); errors on the file's own points."""
    n = len(hr_grid)
    duration = float(grid.timestamp[-1] - grid.timestamp[0]) if n else 0.0
    zones = zone_times(hr_grid, bounds, grid.step_s)
    half = n // 2
    drift = float(hr_grid[half:].mean() - hr_grid[:half].mean()) if n >= 2 else 0.0
    summary: dict[str, Any] = {
        "duration_s": duration,
        "distance_km": float(np.sum(grid.speed_kmh[1:] / 3.6 * grid.step_s) / 1000.0),
        "avg_speed_kmh": float(np.mean(grid.speed_kmh)),
        "avg_hr": float(np.mean(hr_grid)),
        "max_hr": float(np.max(hr_grid)),
        "min_hr": float(np.min(hr_grid)),
        "zones": zones,
        "zone_bounds_bpm": [float(b) for b in bounds],
        "drift_bpm": drift,
        "step_s": grid.step_s,
        "n_steps": n,
        "speed_source": grid.speed_source,
        "pauses": [{"start_s": a, "duration_s": d} for a, d in grid.pauses],
    }
    if hr_true is not None:
        ok = np.isfinite(hr_true)
        if ok.sum() >= MIN_HR_POINTS:
            err = hr_pred_points[ok] - hr_true[ok]
            summary.update(
                mae=float(np.mean(np.abs(err))),
                rmse=float(np.sqrt(np.mean(err**2))),
                bias=float(np.mean(err)),
                recorded_avg_hr=float(np.mean(hr_true[ok])),
                recorded_max_hr=float(np.max(hr_true[ok])),
                n_hr=int(ok.sum()),
            )
    return summary


# --------------------------------------------------------------------------- prediction


PERSONAL_KEYS = ("avg_hr", "max_hr", "min_hr", "zones", "drift_bpm", "mae", "rmse", "bias")
HEADLINE_COLUMNS = {"population": "hr_pred", "offset": "hr_offset", "personal": "hr_personal"}
BAND_COLUMNS = ("hr_p10", "hr_p50", "hr_p90")  # the headline's band on the file's points


@dataclass
class Curve:
    """A predicted curve on the grid with what its band needs: the network's spread (BPM), the
    number of earlier runs the network read (its history bucket), and the runner scale's
    factor of the spread with the number of earlier runs it read (1 and 0 without one)."""

    hr: np.ndarray
    spread: np.ndarray
    n_context: int
    factor: float
    factor_runs: int


def _curve_summary(
    grid: Grid, hr_grid: np.ndarray, bounds: list[float], activity: Activity
) -> tuple[np.ndarray, dict[str, Any]]:
    """Per-point HR of a grid curve and its summary numbers (errors when the file has HR)."""
    hr_points = np.interp(activity.timestamp, grid.timestamp, hr_grid)
    full = summarize(grid, hr_grid, bounds, activity.heart_rate, hr_points)
    return hr_points, {k: full[k] for k in PERSONAL_KEYS if k in full}


def band_summary(
    bundle: Bundle, grid: Grid, curve: Curve, bounds: list[float]
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """The calibrated band of a grid curve: its summary (level, history bucket size, the runner
    scale's factor (rounded) and runs, the workout-average band, the max's band and the zone
    times' ranges, see the module doc) and the lower and upper curves on the grid (float64),
    around the curve's spread times its factor. BundleError without a band."""
    level = bundle.require_calibration().level
    spread = np.asarray(curve.spread, dtype=np.float64) * curve.factor
    lo32, hi32 = bundle.step_band(curve.hr, spread, curve.n_context)
    lo, hi = np.asarray(lo32, dtype=np.float64), np.asarray(hi32, dtype=np.float64)
    _, avg_lo, avg_hi = bundle.average_band(curve.hr, spread, curve.n_context)
    zones = [zone_times(c, bounds, grid.step_s) for c in (lo, curve.hr, hi)]
    summary = {
        "level": float(level),
        "history_runs": int(curve.n_context),
        "runner_factor": round(float(curve.factor), 4),
        "runner_runs": int(curve.factor_runs),
        "avg_hr": [float(avg_lo), float(avg_hi)],
        "max_hr": [float(np.max(lo)), float(np.max(hi))],
        "zones": {z: [min(t[z] for t in zones), max(t[z] for t in zones)] for z in ZONES},
    }
    return summary, lo, hi


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
    from hrpred.io.limits import MIN_TIMESTAMP_S
    from hrpred.serve.profile import (
        check_compatible,
        profile_context,
        profile_offset,
        profile_runner_factor,
    )

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
    columns["hr_offset"], summary["offset"] = _curve_summary(
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
        columns["hr_personal"], summary["personal"] = _curve_summary(
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
    import pandas as pd

    max_hr = _check_range("max HR", max_hr, 100, 240)
    rest_hr = _check_range("resting HR", rest_hr, 25, 120)
    age = _check_range("age", age, 5, 100)
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
