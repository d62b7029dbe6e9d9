"""The summary numbers of a predicted curve: time in HR zones, average and max HR, drift,
the error against recorded HR, and the calibrated band's ranges (`band_summary`). What
`hrpred.serve.predict` reports and `hrpred.serve.presentation` shows.

HR zones: Z1 < 60 %, Z2 60-70 %, Z3 70-80 %, Z4 80-90 %, Z5 >= 90 % of the maximum HR, or of
the heart-rate reserve above `rest_hr` (Karvonen) when a resting HR is given. The maximum HR
is `max_hr` if given, else 208 - 0.7 * age (Tanaka) if `age` is given, else DEFAULT_MAX_HR.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hrpred.bundle.runtime import Bundle
from hrpred.io.activity import Activity
from hrpred.serve.inputs import Grid

DEFAULT_MAX_HR = 190.0  # BPM, used for zones when neither max_hr nor age is given
ZONE_FRACTIONS = (0.6, 0.7, 0.8, 0.9)  # lower bounds of Z2..Z5 (fraction of max HR or HRR)
ZONES = ("Z1", "Z2", "Z3", "Z4", "Z5")
MIN_HR_POINTS = 10  # recorded-HR samples needed to report an error against it
PERSONAL_KEYS = ("avg_hr", "max_hr", "min_hr", "zones", "drift_bpm", "mae", "rmse", "bias")


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


def check_range(name: str, value: float | None, lo: float, hi: float) -> float | None:
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


@dataclass
class Curve:
    """A predicted curve on the grid with what its band needs: the network's spread (BPM), the
    number of earlier runs its plan used (its history bucket: those after the latest level
    change), and the runner scale's factor of the spread with the number of earlier runs it
    read (1 and 0 without one)."""

    hr: np.ndarray
    spread: np.ndarray
    n_context: int
    factor: float
    factor_runs: int


def curve_summary(
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
    times' ranges, see `hrpred.serve.predict`'s module doc) and the lower and upper curves on
    the grid (float64), around the curve's spread times its factor. BundleError without a
    band."""
    level = bundle.require_calibration().level
    b = bundle.band(curve.hr, curve.spread, curve.n_context, curve.factor)
    lo, hi, avg_lo, avg_hi = b.lower, b.upper, b.average_lower, b.average_upper
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
