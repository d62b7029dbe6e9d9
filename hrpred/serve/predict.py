"""Predict the heart-rate curve of a runner's own activity file with an exported bundle.

Steps (the same inputs the model trained on, no train/serve skew):
1. speed from the file (native, else distance, else GPS; `hrpred.io.userfiles.derive_speed`);
2. resample speed and altitude onto a uniform grid at the bundle's sampling step (the
   training data's typical step), averaging denser samples over each step; inside recording
   gaps (pauses) the speed is the gap's average (distance covered / time, 0 if unknown);
3. features with `hrpred.features.compute_features` and the bundle's feature list (the
   featurize stage calls the same function);
4. one full-length forward pass (the LSTM takes any length) and linear interpolation of the
   predicted HR back to the file's own timestamps;
5. a summary: average/max predicted HR, time in 5 HR zones, drift between halves and, when
   the file has HR, the error against it.

HR zones: Z1 < 60 %, Z2 60-70 %, Z3 70-80 %, Z4 80-90 %, Z5 >= 90 % of the maximum HR, or of
the heart-rate reserve above `rest_hr` (Karvonen) when a resting HR is given. The maximum HR
is `max_hr` if given, else 208 - 0.7 * age (Tanaka) if `age` is given, else DEFAULT_MAX_HR.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from hrpred.export.bundle import Bundle, BundleError, load_bundle
from hrpred.io.userfiles import (
    MOVING_KMH,
    SPEED_MAX_KMH,
    Activity,
    ActivityError,
    cumulative_distance,
    derive_speed,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Bundle",
    "BundleError",
    "Grid",
    "Prediction",
    "load_bundle",
    "predict_activity",
    "resample_activity",
    "grid_features",
]

DEFAULT_MAX_HR = 190.0  # BPM, used for zones when neither max_hr nor age is given
ZONE_FRACTIONS = (0.6, 0.7, 0.8, 0.9)  # lower bounds of Z2..Z5 (fraction of max HR or HRR)
ZONES = ("Z1", "Z2", "Z3", "Z4", "Z5")
PAUSE_MIN_S = 60.0  # a recording gap longer than this (and 3 steps) is a pause: speed 0
MIN_DURATION_S = 60.0  # shorter files cannot give a meaningful HR curve
SHORT_WARN_S = 600.0  # HR needs minutes to settle: warn below 10 min
MIN_DISTANCE_M = 50.0  # "no movement": the whole file covers less than this (or MOVING_KMH)
MIN_HR_POINTS = 10  # recorded-HR samples needed to report an error against it


@dataclass
class Grid:
    """An activity resampled on the training grid (uniform step)."""

    timestamp: np.ndarray  # Unix s (t0 + k * step)
    speed_kmh: np.ndarray
    altitude_m: np.ndarray
    step_s: float
    paused: np.ndarray  # bool, grid steps inside a recording gap (speed = gap average)
    speed_source: str
    point_speed_kmh: np.ndarray  # speed at the file's own points (after smoothing)
    point_altitude_m: np.ndarray | None  # altitude at the file's points, None if absent
    warnings: list[str] = field(default_factory=list)


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


def window_mean(t: np.ndarray, x: np.ndarray, width_s: float) -> np.ndarray:
    """Centred time-window mean: mean of x over samples with |t_j - t_i| <= width_s / 2."""
    c = np.concatenate([[0.0], np.cumsum(x)])
    lo = np.searchsorted(t, t - width_s / 2, side="left")
    hi = np.searchsorted(t, t + width_s / 2, side="right")
    return (c[hi] - c[lo]) / np.maximum(hi - lo, 1)


def resample_activity(activity: Activity, step_s: float) -> Grid:
    """Speed and altitude of an activity on a uniform grid of `step_s` seconds from its start.

    A file already on that grid comes back unchanged. Denser files are averaged over each
    step first (so 1 Hz noise does not alias); long recording gaps get their average speed.
    """
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
    speed, source, speed_warns = derive_speed(activity)
    warns += speed_warns
    altitude = activity.altitude
    if altitude is None:
        warns.append("no altitude in the file: assuming flat ground (altitude 0 m)")

    dense = float(np.median(np.diff(t))) < 0.75 * step_s
    if dense:  # average over one step so the grid value is the step's mean, not a sample
        speed = window_mean(t, speed, step_s)
        if altitude is not None:
            altitude = window_mean(t, altitude, step_s)

    n_grid = int(np.floor(duration / step_s + 1e-9)) + 1
    grid_t = t[0] + step_s * np.arange(n_grid, dtype=np.float64)
    grid_speed = np.interp(grid_t, t, speed)
    grid_alt = np.interp(grid_t, t, altitude) if altitude is not None else np.zeros(n_grid)

    # Recording gaps: auto-pause (the runner stood) or sparse "smart" recording (they ran on).
    # Inside a gap the speed is the distance covered over the gap time (0 when unknown).
    pause_s = max(PAUSE_MIN_S, 3.0 * step_s)
    gaps = np.flatnonzero(np.diff(t) > pause_s)
    paused = np.zeros(n_grid, dtype=bool)
    if gaps.size:
        cum = cumulative_distance(activity)
        for g in gaps:
            inside = (grid_t > t[g]) & (grid_t < t[g + 1])
            covered = 0.0 if cum is None else max(float(cum[g + 1] - cum[g]), 0.0)
            grid_speed[inside] = min(covered / (t[g + 1] - t[g]) * 3.6, SPEED_MAX_KMH)
            paused |= inside
        total = float(np.sum(np.diff(t)[gaps]))
        warns.append(
            f"{gaps.size} recording gap(s) longer than {pause_s:.0f} s "
            f"({total / 60:.1f} min in all): speed there = distance covered / gap time"
            + ("" if cum is not None else " (unknown: 0)")
        )

    distance_m = float(np.sum(grid_speed[1:] / 3.6 * step_s))
    if float(np.max(grid_speed)) < MOVING_KMH or distance_m < MIN_DISTANCE_M:
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
        speed_source=source,
        point_speed_kmh=np.asarray(speed, dtype=np.float64),
        point_altitude_m=None if altitude is None else np.asarray(altitude, dtype=np.float64),
        warnings=warns,
    )


def grid_features(features: list[str], grid: Grid, gender: str | None) -> np.ndarray:
    """Unscaled features [n, F] of a grid, with the registry featurize uses."""
    from hrpred.features.registry import WorkoutInputs, compute_features

    inputs = WorkoutInputs.from_arrays(grid.timestamp, grid.speed_kmh, grid.altitude_m, gender)
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
    # Each grid step stands for step_s seconds; the last one for the remainder of the file.
    weights = np.full(n, grid.step_s)
    weights[-1] = 0.0 if n > 1 else grid.step_s
    idx = np.searchsorted(np.asarray(bounds), hr_grid, side="right")  # 0..4 = Z1..Z5
    zones = {z: float(weights[idx == k].sum()) for k, z in enumerate(ZONES)}
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


def predict_activity(
    bundle: Bundle,
    activity: Activity,
    gender: str | None = None,
    max_hr: float | None = None,
    rest_hr: float | None = None,
    age: float | None = None,
) -> Prediction:
    """Predicted HR for every point of `activity`, plus a summary (see the module doc)."""
    import pandas as pd

    max_hr = _check_range("max HR", max_hr, 100, 240)
    rest_hr = _check_range("resting HR", rest_hr, 25, 120)
    age = _check_range("age", age, 5, 100)
    if gender is not None and gender.strip().lower() not in ("male", "female", "unknown"):
        raise ValueError(f"gender must be male, female or unknown, got {gender!r}")
    bounds, basis, top = zone_bounds(max_hr, rest_hr, age)

    warns = list(activity.warnings)
    grid = resample_activity(activity, bundle.step_s)
    warns += grid.warnings
    if gender is None and "gender" in bundle.features:
        warns.append("gender not given: the model uses 'unknown' (pass --gender)")
    feats = grid_features(bundle.features, grid, gender)
    hr_grid = np.asarray(bundle.predict(feats), dtype=np.float64)
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
    return Prediction(
        frame=frame, summary=summary, warnings=warns, grid=grid, features=feats, hr_grid=hr_grid
    )
