"""A runner's activity file as the model's input: the file's channels on the training grid
(`resample_activity` -> `Grid`) and the features on it (`grid_features`). Prediction
(`hrpred.serve.predict`) and profiles (`hrpred.serve.profile`) both start here.

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
   featurize stage calls the same function).

What still differs from training, and why: the clean path run on the grid's points gives
the same features (tests/test_skew.py), except inside recording gaps, where a training
recording has one long step and the grid has points with the gap's average speed (the LSTM
counts steps, so the gap needs them); and the grid is uniform where the training data's
steps vary around their mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hrpred.clean.pauses import PAUSE_MIN_S  # a gap over this (and 3 steps): a pause, speed 0
from hrpred.features.registry import WorkoutInputs, compute_features
from hrpred.io.activity import Activity, ActivityError
from hrpred.io.limits import MAX_DURATION_S, MAX_POINTS
from hrpred.io.sport import require_running
from hrpred.timeseries import SpeedConfig, haversine_km, speed_from_recording

MIN_DURATION_S = 60.0  # shorter files cannot give a meaningful HR curve
SHORT_WARN_S = 600.0  # HR needs minutes to settle: warn below 10 min
MIN_DISTANCE_M = 50.0  # "no movement": the whole file covers less than this


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


NO_SPEED = {  # speed_from_recording reasons, for the one-line error
    "no_gps": "no usable speed, distance or GPS positions",
    "gps_stuck": "no movement (the GPS position never changes)",
    "gps_spikes": "too many GPS jumps to derive speed",
    "gps_length": "GPS positions do not cover every point",
    "gps_nonfinite": "GPS positions missing",
    "gps_range": "GPS positions out of range",
}


def pause_threshold_s(step_s: float) -> float:
    """A recording gap longer than this (s) is a pause on a grid of `step_s` seconds: the pause
    threshold, and at least 3 grid steps."""
    return max(PAUSE_MIN_S, 3.0 * step_s)


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
    rules (see the module doc); a file already on that grid keeps its own points. A file that
    says it is not a run (a ride, a swim: `hrpred.io.sport`) is an ActivityError first."""
    require_running(activity)
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
    pause_s = pause_threshold_s(step_s)
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
    # the grid covers a pause with steps of its own: mark the first step after each one, where
    # `since_pause` restarts (clean keeps a pause as one long step: the same restart there)
    resume = ~grid.paused & np.r_[False, grid.paused[:-1]]
    inputs = WorkoutInputs.from_arrays(
        grid.timestamp, grid.speed_kmh, grid.altitude_m, gender, resume=resume
    )
    return compute_features(features, inputs)
