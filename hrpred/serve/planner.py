"""`hrpred plan` and the app's Plan tab: a route and a request (pace, finish time, HR cap,
stops) -> the planned run, its prediction and its numbers.

The pace plan (`hrpred.serve.plan`):
- a recording without `replan`: its own recorded pace (speeds and stops); `pace`, `finish_s`
  and `stops` need `replan`;
- `pace_s_per_km` (the average moving pace) or `finish_s` (the finish time, stops included):
  the even-effort plan over the grades (Minetti) that covers the route in that moving time;
- `pace_from`: a recording's pace profile (and stops, unless `stops` are given), by share of
  the distance;
- `hr_cap` (BPM) or `zone` (1-4: the cap is the zone's upper edge): the fastest plan under the
  cap after `warmup_s` (`hrpred.serve.plan_cap`), never faster than the pace plan when one is
  given (a recording's own pace included); without one, from the even-effort shape.
The planned run starts at `start_time`: by default a recording's own start (so that a profile
personalises it with the runs before it, as `hrpred predict` does), else now. It is predicted
with the bundle and personalised with `profile` like `hrpred predict --profile`: the plan is
as personal as the profile, and its numbers are the headline (most personal) prediction's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hrpred.bundle.runtime import Bundle
from hrpred.serve.plan import (
    PacePlan,
    PlannedRun,
    Stop,
    even_effort,
    even_effort_for_time,
    pace_from,
    predict_plan,
    recorded_plan,
    recorded_timing,
)
from hrpred.serve.plan_cap import CapResult, cap_search
from hrpred.serve.plan_summary import plan_summary
from hrpred.serve.route import Course, Route, course
from hrpred.serve.summary import ZONES, zone_bounds

WARMUP_S = 300.0  # the cap holds from this many seconds into the run on (--warmup)
REFERENCE_FLAT_KMH = 10.0  # a cap search without a pace plan starts from this flat speed
CAP_RANGE_BPM = (80.0, 230.0)  # a cap outside is a typo
LENGTH_WARN = 0.05  # a run to follow longer or shorter than the route by this share: warned


@dataclass(frozen=True)
class PlanRequest:
    """What the runner asks for (module doc); at most one of pace, finish time and a
    recording to follow the pace profile of (`pace_from`), and of cap and zone."""

    pace_s_per_km: float | None = None
    finish_s: float | None = None
    hr_cap: float | None = None
    zone: int | None = None
    warmup_s: float = WARMUP_S
    stops: tuple[Stop, ...] = ()
    replan: bool = False
    start_time: float | None = None
    pace_from: Route | None = None  # a recording whose pace profile to follow


@dataclass
class PlanOutcome:
    """The planned run (`run`), how its pace was set (`pace`, text), the cap search's result
    (None without a cap), its numbers (`hrpred.serve.plan_summary`) and the warnings."""

    route: Route
    course: Course
    run: PlannedRun
    pace: str
    cap: CapResult | None
    summary: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def format_clock(seconds: float) -> str:
    """1:05:09 or 5:09 (h:mm:ss or m:ss)."""
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def cap_of(request: PlanRequest, max_hr: float | None, rest_hr: float | None, age: float | None):
    """The HR cap (BPM) and its description, None without one; ValueError when out of range."""
    if request.hr_cap is not None and request.zone is not None:
        raise ValueError("give either an HR cap or a zone, not both")
    if request.hr_cap is not None:
        cap = float(request.hr_cap)
        if not CAP_RANGE_BPM[0] <= cap <= CAP_RANGE_BPM[1]:
            lo, hi = CAP_RANGE_BPM
            raise ValueError(f"HR cap {cap:g} is outside {lo:g}-{hi:g} BPM")
        return cap, f"{cap:.0f} BPM"
    if request.zone is None:
        return None
    if request.zone not in range(1, len(ZONES)):
        raise ValueError(
            f"zone must be 1-{len(ZONES) - 1} (Z5 has no upper edge), got {request.zone}"
        )
    bounds, basis, _ = zone_bounds(max_hr, rest_hr, age)
    cap = float(bounds[request.zone - 1])
    return cap, f"{cap:.0f} BPM (top of Z{request.zone}; {basis})"


def _stops(request: PlanRequest, route: Route, warns: list[str]) -> tuple[Stop, ...]:
    kept = []
    for stop in request.stops:
        if not 0.0 < stop.distance_m < route.length_m or stop.duration_s <= 0:
            warns.append(
                f"stop at km {stop.distance_m / 1000:g} for {stop.duration_s:g} s is not on the "
                f"route ({route.length_m / 1000:.2f} km) or has no length: ignored"
            )
            continue
        kept.append(stop)
    return tuple(sorted(kept, key=lambda s: s.distance_m))


def base_plan(
    route: Route, segments: Course, request: PlanRequest, max_kmh: float, warns: list[str]
) -> tuple[PacePlan | None, tuple[Stop, ...], str]:
    """The pace plan before any cap (None: a cap alone sets it), the stops and a description."""
    given = [request.pace_s_per_km, request.finish_s, request.pace_from]
    asked = any(x is not None for x in given)
    if sum(x is not None for x in given) > 1:
        raise ValueError("give one of a pace, a finish time and a run to follow, not several")
    if route.recorded is not None and not request.replan:
        if asked or request.stops:
            raise ValueError(
                f"{route.source} is a recording: its own pace is the plan; pass --replan to "
                "plan its route at another pace, finish time or with stops"
            )
        plan = recorded_plan(route, segments)
        return plan, plan.stops, "the recorded pace (speeds and stops of the recording)"
    if request.pace_from is not None:
        follow = request.pace_from
        plan = pace_from(follow, segments)
        if abs(follow.length_m / route.length_m - 1.0) > LENGTH_WARN:
            warns.append(
                f"{follow.source} covers {follow.length_m / 1000:.2f} km, the route "
                f"{route.length_m / 1000:.2f} km: its pace profile is stretched to the route"
            )
        stops = _stops(request, route, warns) if request.stops else plan.stops
        what = f"the pace profile of {follow.source} (by share of the distance)"
        return PacePlan(plan.speed_kmh, stops, plan.start_kmh), stops, what
    stops = _stops(request, route, warns)
    stopped = sum(s.duration_s for s in stops)
    if request.pace_s_per_km is not None:
        moving = request.pace_s_per_km * route.length_m / 1000.0
        what = f"{format_clock(request.pace_s_per_km)} min/km on average"
    elif request.finish_s is not None:
        moving = request.finish_s - stopped
        if moving <= 0:
            raise ValueError(
                f"finish time {format_clock(request.finish_s)} leaves no time to run after "
                f"{format_clock(stopped)} of stops"
            )
        what = f"finish in {format_clock(request.finish_s)}"
    else:
        return None, stops, "the fastest under the cap"
    speeds = even_effort_for_time(segments, moving, max_kmh)
    return PacePlan(speeds, stops), stops, f"{what}, spread by grade (even effort, Minetti)"


def plan_route(
    bundle: Bundle,
    route: Route,
    request: PlanRequest,
    *,
    gender: str | None = None,
    max_hr: float | None = None,
    rest_hr: float | None = None,
    age: float | None = None,
    profile: Any = None,
) -> PlanOutcome:
    """Plan `route` as `request` asks and predict it (module doc). ValueError (one line) for
    a request that cannot be planned; the readers' and predict's errors pass through."""
    if request.warmup_s < 0:
        raise ValueError(f"warm-up must be >= 0 s, got {request.warmup_s:g}")
    warns = list(route.warnings)
    segments = course(route)
    max_kmh = float(bundle.speed.max_kmh)
    capped = cap_of(request, max_hr, rest_hr, age)
    paced = (request.pace_s_per_km, request.finish_s, request.pace_from, route.recorded)
    if capped is None and all(x is None for x in paced):
        raise ValueError(
            "give a pace (--pace M:SS), a finish time (--time H:MM:SS), a run to follow "
            "(--pace-from) or an HR cap (--hr-cap, --zone)"
        )
    plan, stops, pace = base_plan(route, segments, request, max_kmh, warns)
    start = request.start_time
    if start is None:
        start = route.recorded.start_time if route.recorded is not None else None
    start = float(round(time.time())) if start is None else float(start)
    kwargs = {"gender": gender, "max_hr": max_hr, "rest_hr": rest_hr, "age": age}
    if profile is not None:
        kwargs["profile"] = profile

    def evaluate(speeds: np.ndarray) -> PlannedRun:
        plan_at = PacePlan(speeds, stops, None if plan is None else plan.start_kmh)
        return predict_plan(bundle, route, segments, plan_at, start, **kwargs)

    cap = None
    if capped is None:
        assert plan is not None
        exact = (
            recorded_timing(route) if route.recorded is not None and not request.replan else None
        )
        run = predict_plan(bundle, route, segments, plan, start, exact, **kwargs)
    else:
        upper = None if plan is None else plan.speed_kmh
        shape = upper if upper is not None else even_effort(segments, REFERENCE_FLAT_KMH, max_kmh)
        cap = cap_search(
            evaluate, shape, upper, capped[0], request.warmup_s, max_kmh, bundle.step_s
        )
        run = cap.run
        pace = f"{pace}; HR cap {capped[0]:.0f} BPM after {format_clock(request.warmup_s)}"
    summary = plan_summary(run, route, segments, rest_hr=rest_hr, gender=gender)
    if cap is not None:
        summary["cap"] = {
            "cap_bpm": cap.cap_bpm,
            "what": capped[1],
            "warmup_s": cap.warmup_s,
            "share": cap.share,
            "met": cap.met,
            "limited_by": cap.limited_by,
            "evaluations": cap.evaluations,
        }
    summary["pace"] = pace
    for w in run.prediction.warnings:
        if "recording gap" in w:  # predict's words for the planned stops it sees as pauses
            w = "stops of a minute or more: the model sees them as pauses (the watch paused)"
        if w not in warns:
            warns.append(w)
    return PlanOutcome(route, segments, run, pace, cap, summary, warns)
