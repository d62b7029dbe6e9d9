"""What a planned run's prediction says, as numbers: finish and moving time, the headline's
average and max HR with their bands and time in zones (from `predict_activity`'s summary),
per-km splits and the training load.

Splits: for each kilometre (the last one shorter), the moving time and pace, the net grade
(elevation change / distance) and climb, the time stopped (a stop at km 5 is in the fifth
split; one at the start in the first), and the headline HR averaged over
the planned points in it (they are a uniform time grid: a time average), with the band's
averages.

Training load: Banister's TRIMP (Banister EW. Modeling elite athletic performance. In:
Physiological Testing of Elite Athletes, Human Kinetics, 1991), the sum over the planned
points of minutes x HRr x a x exp(b x HRr), HRr = (HR - rest) / (max - rest) clipped to
[0, 1], a = 0.64, b = 1.92 for men (also used when the gender is not given) and a = 0.86,
b = 1.67 for women. Each point stands for one grid step (the last for none, as for the time in
zones), so a stop long enough to be a pause adds nothing. Max HR: the zones' (given, from the
age, or the default); rest HR: given, else DEFAULT_REST_HR. Its range is the TRIMP of the
band's lower and upper curves: an indication, not a calibrated interval.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hrpred.serve.plan import PlannedRun
from hrpred.serve.route import Course, Route

DEFAULT_REST_HR = 60.0  # BPM, the TRIMP's resting HR when none is given
TRIMP_WEIGHTS = {"male": (0.64, 1.92), "female": (0.86, 1.67)}  # Banister's a, b
SPLIT_M = 1000.0  # splits every kilometre


def trimp(hr: np.ndarray, step_s: float, rest_hr: float, max_hr: float, gender: str) -> float:
    """Banister's TRIMP of a curve on a uniform grid of `step_s` seconds (module doc)."""
    a, b = TRIMP_WEIGHTS.get(gender, TRIMP_WEIGHTS["male"])
    x = np.clip((np.asarray(hr, dtype=np.float64) - rest_hr) / (max_hr - rest_hr), 0.0, 1.0)
    minutes = np.full(x.size, step_s / 60.0)
    if x.size > 1:
        minutes[-1] = 0.0
    return float(np.sum(minutes * x * a * np.exp(b * x)))


def training_load(run: PlannedRun, rest_hr: float | None, gender: str | None) -> dict[str, Any]:
    """The run's TRIMP (module doc) with its band range and what it was computed with."""
    summary = run.prediction.summary
    top = float(summary["zone_max_hr"])
    rest = DEFAULT_REST_HR if rest_hr is None else float(rest_hr)
    if rest >= top:
        raise ValueError(f"resting HR {rest:.0f} must be below the max HR {top:.0f}")
    sex = gender if gender in TRIMP_WEIGHTS else "male"
    step = float(summary["step_s"])
    band = None
    if run.lo is not None and run.hi is not None:
        band = [trimp(run.lo, step, rest, top, sex), trimp(run.hi, step, rest, top, sex)]
    return {
        "trimp": trimp(run.hr, step, rest, top, sex),
        "band": band,
        "rest_hr": rest,
        "rest_given": rest_hr is not None,
        "max_hr": top,
        "weights": sex if gender in TRIMP_WEIGHTS else "male (gender not given)",
    }


def splits(run: PlannedRun, route: Route, course: Course) -> list[dict[str, Any]]:
    """Per-km splits of the planned run (module doc)."""
    total = route.length_m
    ends = np.r_[np.arange(0.0, total, SPLIT_M), total]
    if ends.size > 2 and ends[-1] - ends[-2] < 1.0:
        ends = np.delete(ends, -2)
    timing = run.timing
    moving = np.interp(ends, timing.edges_m, timing.moving_s)
    elevation = np.interp(ends, route.distance_m, route.altitude_m)
    edge_alt = np.interp(course.edges_m, route.distance_m, route.altitude_m)
    climbs = np.r_[0.0, np.cumsum(np.maximum(np.diff(edge_alt), 0.0))]
    climb = np.interp(ends, course.edges_m, climbs)
    dwell = timing.leave_s - timing.arrive_s
    out = []
    for i in range(ends.size - 1):
        a, b = ends[i], ends[i + 1]
        last = i == ends.size - 2
        at_start = (timing.edges_m == a) & (i == 0)  # a stop at the start: the first split
        inside = (run.distance_m >= a) & ((run.distance_m < b) | last)
        row: dict[str, Any] = {
            "km": i + 1,
            "distance_m": float(b - a),
            "moving_s": float(moving[i + 1] - moving[i]),
            "pace_s_per_km": float((moving[i + 1] - moving[i]) / (b - a) * 1000.0),
            "grade_pct": float(100.0 * (elevation[i + 1] - elevation[i]) / (b - a)),
            "climb_m": float(climb[i + 1] - climb[i]),
            "stopped_s": float(
                dwell[(timing.edges_m > a) & (timing.edges_m <= b) | at_start].sum()
            ),
            "hr": float(np.mean(run.hr[inside])) if inside.any() else None,
            "hr_band": None,
        }
        if run.lo is not None and run.hi is not None and inside.any():
            row["hr_band"] = [float(np.mean(run.lo[inside])), float(np.mean(run.hi[inside]))]
        out.append(row)
    return out


def plan_summary(
    run: PlannedRun,
    route: Route,
    course: Course,
    *,
    rest_hr: float | None,
    gender: str | None,
) -> dict[str, Any]:
    """The planned run's numbers (module doc); `headline` names the curve they are of."""
    pred = run.prediction.summary
    headline = pred["headline"]
    head = pred if headline == "population" else pred[headline]
    edge_alt = np.interp(course.edges_m, route.distance_m, route.altitude_m)
    timing = run.timing
    return {
        "source": route.source,
        "distance_km": route.length_m / 1000.0,
        "climb_m": float(np.maximum(np.diff(edge_alt), 0.0).sum()),
        "descent_m": float(np.maximum(-np.diff(edge_alt), 0.0).sum()),
        "has_elevation": route.has_elevation,
        "start_time": float(run.activity.timestamp[0]),
        "finish_s": timing.finish_s,
        "moving_s": float(timing.moving_s[-1]),
        "stopped_s": timing.finish_s - float(timing.moving_s[-1]),
        "pace_s_per_km": float(timing.moving_s[-1]) / route.length_m * 1000.0,
        "headline": headline,
        "avg_hr": float(head["avg_hr"]),
        "max_hr": float(head["max_hr"]),
        "band": head.get("band"),
        "zones": head["zones"],
        "zone_bounds_bpm": pred["zone_bounds_bpm"],
        "zone_basis": pred["zone_basis"],
        "history": pred.get("history"),
        "load": training_load(run, rest_hr, gender),
        "splits": splits(run, route, course),
    }
