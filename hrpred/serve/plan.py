"""A pace plan over a route, the run it describes, and that run's predicted heart rate.

A `PacePlan` sets a speed for every segment of a `Course` (`hrpred.serve.route`) and the
stops (distance, duration). Its `Timing` says when the runner arrives at and leaves each
segment edge; the planned run is then an `Activity` like the recording a watch logging every
grid step would make of it (`planned_activity`): points at the bundle's grid times from the
planned start, the distance covered by then, the route's elevation and positions there, and the
speed as the step's average (distance covered in the step / step, a recording's derived
speed); a stop at least as long as a pause leaves a gap (the watch auto-paused: `hrpred predict`
sees a pause, as the training data's pauses), a shorter one points at speed 0.
`predict_plan` predicts that activity with `hrpred.serve.predict.predict_activity`, the same
features, bundle and personalisation as `hrpred predict`, and reads off its headline (the most
personal prediction) and band.

Pace plans (speeds per segment, km/h):
- `even_effort`: the flat speed times the grade factor of `hrpred.serve.pacing` (Minetti's
  energy cost of running on slopes): the same effort on every slope;
- `even_effort_for_time`: the even-effort plan that covers the route in a given moving time;
- `recorded_plan`: a recording's own pace (its speeds and stops, `Route.recorded`); its
  exact timing (`recorded_timing`) at the recording's own points gives back the speeds
  `hrpred predict` saw;
- `pace_from`: a recording's pace profile on another route, by share of the distance.
The plans made here stay within [MIN_SPEED_KMH, the bundle's speed cap]; a recording's own
speeds are kept as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hrpred.bundle.runtime import Bundle
from hrpred.io.activity import Activity, ActivityError
from hrpred.io.limits import MAX_DURATION_S
from hrpred.serve.inputs import pause_threshold_s
from hrpred.serve.pacing import grade_speed_factor
from hrpred.serve.predict import HEADLINE_COLUMNS, Prediction, predict_activity
from hrpred.serve.route import Course, Route

MIN_SPEED_KMH = 3.0  # slowest planned speed: a walk (km/h)
SOLVE_STEPS = 80  # bisection steps for the flat speed of a finish time (far below 1 ms)


@dataclass(frozen=True)
class Stop:
    """A planned stop: where (m from the start) and for how long (s)."""

    distance_m: float
    duration_s: float


@dataclass(frozen=True)
class PacePlan:
    """Planned speed of every course segment (km/h), the stops and the speed at the start
    (km/h; None: the first segment's, as a recording's derived speed starts)."""

    speed_kmh: np.ndarray
    stops: tuple[Stop, ...] = ()
    start_kmh: float | None = None


@dataclass(frozen=True)
class Timing:
    """When the runner arrives at (`arrive_s`) and leaves (`leave_s`) each course edge (s from
    the start; they differ by a stop there) and the moving time to each edge (`moving_s`)."""

    edges_m: np.ndarray
    arrive_s: np.ndarray
    leave_s: np.ndarray
    moving_s: np.ndarray
    gaps: tuple[tuple[float, float], ...] = ()  # a recording's own gaps (`recorded_timing`)
    stops_pause: bool = True  # a stop as long as a pause is a gap (False: a recording's own)

    @property
    def finish_s(self) -> float:
        return float(self.arrive_s[-1])

    def distance_at(self, t_s: np.ndarray) -> np.ndarray:
        """Distance covered (m) at times `t_s` (s from the start)."""
        knots_t = np.column_stack([self.arrive_s, self.leave_s]).ravel()
        knots_d = np.repeat(self.edges_m, 2)
        return np.interp(t_s, knots_t, knots_d)

    def stopped(self, t_s: np.ndarray, min_s: float) -> np.ndarray:
        """Times inside a stop of at least `min_s` seconds or a recording's gap (strictly)."""
        long = ((self.leave_s - self.arrive_s) >= min_s) & self.stops_pause
        a = np.r_[self.arrive_s[long], [g[0] for g in self.gaps]]
        b = np.r_[self.leave_s[long], [g[1] for g in self.gaps]]
        order = np.argsort(a, kind="stable")
        a, b = a[order], b[order]
        k = np.searchsorted(a, t_s, side="left") - 1
        inside = k >= 0
        kk = np.clip(k, 0, None)
        return inside & (t_s > a[kk]) & (t_s < b[kk]) if a.size else np.zeros(t_s.size, bool)


def timing(course: Course, plan: PacePlan) -> Timing:
    """The plan's timing: each segment at its speed, each stop at the edge nearest to it."""
    speed = np.asarray(plan.speed_kmh, dtype=np.float64)
    if speed.shape != course.grade.shape or not (speed > 0).all():
        raise ValueError("a pace plan needs a positive speed for every segment")
    dwell = np.zeros(course.edges_m.size)
    for stop in plan.stops:
        dwell[int(np.argmin(np.abs(course.edges_m - stop.distance_m)))] += stop.duration_s
    dwell[-1] = 0.0  # the run ends at the finish
    seg_s = course.lengths_m / (speed / 3.6)
    moving = np.r_[0.0, np.cumsum(seg_s)]
    arrive = np.r_[0.0, np.cumsum(seg_s + dwell[:-1])]
    return Timing(course.edges_m, arrive, arrive + dwell, moving)


def clip_speed(speed_kmh: np.ndarray, max_kmh: float) -> np.ndarray:
    return np.clip(speed_kmh, MIN_SPEED_KMH, max_kmh)


def even_effort(course: Course, flat_kmh: float, max_kmh: float) -> np.ndarray:
    """Speeds of the same effort on every slope as `flat_kmh` on the flat (module doc)."""
    return clip_speed(flat_kmh * grade_speed_factor(course.grade), max_kmh)


def even_effort_for_time(course: Course, moving_s: float, max_kmh: float) -> np.ndarray:
    """The even-effort speeds that cover the course in `moving_s` seconds (bisection on the
    flat speed; ValueError when even the speed cap is too slow or the walk too fast)."""
    lengths = course.lengths_m

    def moving(flat: float) -> float:
        return float(np.sum(lengths / (even_effort(course, flat, max_kmh) / 3.6)))

    lo, hi = MIN_SPEED_KMH / 10, 10 * max_kmh
    if not moving(hi) <= moving_s <= moving(lo):
        fastest, slowest = moving(hi), moving(lo)
        raise ValueError(
            f"a moving time of {moving_s / 60:.1f} min is outside what the route allows at "
            f"{MIN_SPEED_KMH:g}-{max_kmh:g} km/h ({fastest / 60:.1f}-{slowest / 60:.1f} min)"
        )
    for _ in range(SOLVE_STEPS):
        mid = float(np.sqrt(lo * hi))
        lo, hi = (mid, hi) if moving(mid) > moving_s else (lo, mid)
    return even_effort(course, float(np.sqrt(lo * hi)), max_kmh)


def pace_from(recording: Route, course: Course) -> PacePlan:
    """A recording's pace profile on another route's course, by share of the distance (the
    recording's k-th percent of distance at its pace there), with its stops likewise."""
    rec = recording.recorded
    if rec is None:
        raise ValueError(f"{recording.source}: a route without times has no pace to follow")
    scale = recording.length_m / float(course.edges_m[-1])
    moving_at_points = rec.arrive_s - np.r_[0.0, np.cumsum(rec.dwell_s)[:-1]]
    moving = np.interp(course.edges_m * scale, recording.distance_m, moving_at_points)
    speed = course.lengths_m / np.maximum(np.diff(moving), 1e-3) * 3.6
    stops = tuple(
        Stop(float(d) / scale, float(s))
        for d, s in zip(recording.distance_m, rec.dwell_s, strict=True)
        if s > 0
    )
    return PacePlan(speed, stops, rec.start_kmh)


def recorded_plan(route: Route, course: Course) -> PacePlan:
    """A recording's own pace on its course: each segment's speed from the recorded moving
    time at its edges, and the recorded stops (ValueError for a route without times)."""
    return pace_from(route, course)


def recorded_timing(route: Route) -> Timing:
    """A recording's own timing at its route points and its gaps (exact, unlike
    `recorded_plan`'s speeds on the course's segments): planning it gives back the speeds and
    pauses `hrpred predict` saw (standing still with the watch running is not a pause)."""
    rec = route.recorded
    if rec is None:
        raise ValueError(f"{route.source}: a route without times has no recorded pace")
    dwell = np.r_[rec.dwell_s[:-1], 0.0]  # the run ends at the finish
    moving = rec.arrive_s - np.r_[0.0, np.cumsum(dwell)[:-1]]
    return Timing(route.distance_m, rec.arrive_s, rec.arrive_s + dwell, moving, rec.gaps, False)


def planned_activity(
    route: Route, plan: PacePlan, plan_timing: Timing, start_time: float, step_s: float
) -> tuple[Activity, np.ndarray]:
    """The planned run as a recording (module doc) and the distance (m) at its points."""
    finish = plan_timing.finish_s
    if finish > MAX_DURATION_S:
        raise ActivityError(
            f"{route.source}: the plan takes {finish / 3600:.1f} h, more than the "
            f"{MAX_DURATION_S / 3600:.0f} h limit (hrpred.io.limits.MAX_DURATION_S)"
        )
    t = step_s * np.arange(int(np.floor(finish / step_s + 1e-9)) + 1, dtype=np.float64)
    dist = plan_timing.distance_at(t)
    speed = np.r_[0.0, np.diff(dist) / step_s * 3.6]
    speed[0] = plan.start_kmh if plan.start_kmh is not None else speed[min(1, t.size - 1)]
    keep = ~plan_timing.stopped(t, pause_threshold_s(step_s))
    alt, lat, lon = route.at(dist[keep])
    activity = Activity(
        timestamp=start_time + t[keep],
        speed=speed[keep],
        altitude=alt,
        latitude=lat,
        longitude=lon,
        distance=dist[keep],
        source=route.source,
    )
    return activity, dist[keep]


@dataclass
class PlannedRun:
    """A plan's prediction: `prediction` (predict_activity's, on the planned activity), the
    distance (m) at its points and the headline HR with its band there (None without one)."""

    plan: PacePlan
    timing: Timing
    activity: Activity
    prediction: Prediction
    distance_m: np.ndarray
    hr: np.ndarray
    lo: np.ndarray | None
    hi: np.ndarray | None

    @property
    def t_s(self) -> np.ndarray:
        return self.prediction.frame["t_s"].to_numpy(dtype=np.float64)


def headline_curve(
    prediction: Prediction,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The headline HR of a prediction at its points, with its band (None without one)."""
    frame = prediction.frame
    if "hr_p50" in frame:
        hr = frame["hr_p50"].to_numpy(dtype=np.float64)
        return hr, frame["hr_p10"].to_numpy(np.float64), frame["hr_p90"].to_numpy(np.float64)
    column = HEADLINE_COLUMNS[prediction.summary["headline"]]
    return frame[column].to_numpy(dtype=np.float64), None, None


def predict_plan(
    bundle: Bundle,
    route: Route,
    course: Course,
    plan: PacePlan,
    start_time: float,
    plan_timing: Timing | None = None,
    **predict_kwargs: Any,
) -> PlannedRun:
    """Predict the planned run (module doc); `plan_timing` the plan's timing when it is not
    the course's (`recorded_timing`); `predict_kwargs` go to predict_activity (gender, max_hr,
    rest_hr, age, profile)."""
    if plan_timing is None:
        plan_timing = timing(course, plan)
    activity, dist = planned_activity(route, plan, plan_timing, start_time, bundle.step_s)
    prediction = predict_activity(bundle, activity, **predict_kwargs)
    hr, lo, hi = headline_curve(prediction)
    return PlannedRun(plan, plan_timing, activity, prediction, dist, hr, lo, hi)
