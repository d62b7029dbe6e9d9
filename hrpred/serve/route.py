"""A route for `hrpred plan`: distance along it, elevation, positions, and, for a recorded
activity, when the runner was where (its recorded pace).

Where it comes from (`load_route`):
- a route file (`hrpred.io.routefile`: GPX route, GPX track without times, TCX course): the
  distance along it is the course's own (TCX `DistanceMeters`) when it is complete and never
  decreases, else the great-circle distance between consecutive positions;
- a recorded activity (any file `hrpred.io.userfiles` reads): the recording as `hrpred
  predict` sees it (`hrpred.serve.inputs.resample_activity`: the bundle's grid, speed by the
  clean stage's rules), the distance being the distance that speed covers. Its recorded pace
  (`Recorded`: arrival time at each point, time standing there, the start) is kept, so that
  planning it at that pace gives back the prediction of the recording; `--replan` ignores it.

Elevation: a file without any gives a flat route (with a warning). Spikes are replaced by
linear interpolation, as the clean stage's spike rule does for speed (a rolling median of the
neighbours, `hrpred.timeseries`): a point more than ELEVATION_SPIKE_M off the median of its
SPIKE_WINDOW neighbours, and steeper than the steepest gradient running was measured on
(`hrpred.serve.pacing.GRADE_LIMIT`) from its farther neighbour, is a spike. A real summit
between sparse points is not (its slope is runnable), a GPS glitch between dense ones is.

`course(route)` cuts the route into SEGMENT_M segments with their grade (from the elevation
averaged over a centred GRADE_WINDOW_M window, clipped to +-GRADE_LIMIT): the unit a pace
plan sets a speed for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hrpred.io.activity import Activity, ActivityError
from hrpred.io.limits import MIN_TIMESTAMP_S
from hrpred.io.routefile import RoutePoints, read_route_points
from hrpred.io.userfiles import read_activity
from hrpred.serve.inputs import on_grid, resample_activity
from hrpred.serve.pacing import GRADE_LIMIT
from hrpred.timeseries import (
    SpeedConfig,
    interpolate_gaps,
    moving_average,
    rolling_median,
    step_distances_km,
)

MIN_ROUTE_M = 200.0  # a shorter route has nothing to plan
MIN_STEP_M = 0.01  # points closer than this to the previous one are the same point
ELEVATION_SPIKE_M = 10.0  # an elevation spike is at least this far off its neighbours' median
SPIKE_WINDOW = 7  # points in the rolling median (the clean stage's speed spike_window)
MIN_DISTANCE_FRACTION = 0.9  # a course's distance channel is used when this share is finite
SEGMENT_M = 10.0  # a pace plan's unit of distance (m)
GRADE_WINDOW_M = 100.0  # grade from the elevation averaged over this centred window (m)


@dataclass(frozen=True)
class Recorded:
    """When the runner of a recording was at each route point: `arrive_s` (s from the start),
    `dwell_s` (s standing there before moving on), the start (Unix s; None without a date) and
    the speed recorded at the start (km/h), and the recording's gaps (the watch paused: from,
    to, s from the start)."""

    arrive_s: np.ndarray
    dwell_s: np.ndarray
    start_time: float | None
    start_kmh: float
    gaps: tuple[tuple[float, float], ...] = ()


@dataclass
class Route:
    """Points along a route: distance (m from the start, strictly increasing), elevation (m,
    0 without one), positions (deg) or None."""

    distance_m: np.ndarray
    altitude_m: np.ndarray
    latitude: np.ndarray | None
    longitude: np.ndarray | None
    source: str
    has_elevation: bool
    recorded: Recorded | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def length_m(self) -> float:
        return float(self.distance_m[-1])

    def at(self, distance_m: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Elevation and positions (None without) at distances along the route."""
        d = self.distance_m
        alt = np.interp(distance_m, d, self.altitude_m)
        if self.latitude is None or self.longitude is None:
            return alt, None, None
        return (
            alt,
            np.interp(distance_m, d, self.latitude),
            np.interp(distance_m, d, self.longitude),
        )


def despike_elevation(distance_m: np.ndarray, altitude_m: np.ndarray) -> tuple[np.ndarray, int]:
    """Elevation with its spikes (module doc) interpolated over, and how many there were."""
    n = altitude_m.size
    if n < 3:
        return altitude_m, 0
    deviation = np.abs(altitude_m - rolling_median(altitude_m, SPIKE_WINDOW))
    gaps = np.diff(distance_m)
    spacing = np.maximum(np.r_[gaps[:1], gaps], np.r_[gaps, gaps[-1:]])
    bad = (deviation > ELEVATION_SPIKE_M) & (deviation > GRADE_LIMIT * spacing)
    if not bad.any() or bad.all():
        return altitude_m, 0
    return interpolate_gaps(altitude_m, bad, distance_m), int(bad.sum())


def _elevation(
    distance_m: np.ndarray, altitude: np.ndarray | None, warns: list[str]
) -> tuple[np.ndarray, bool]:
    """Elevation at every point (gaps interpolated over distance, spikes removed), or zeros
    with a warning when the route has fewer than two elevations."""
    if altitude is None or np.isfinite(altitude).sum() < 2:
        warns.append("no elevation in the route: planned on flat ground (altitude 0 m)")
        return np.zeros(distance_m.size), False
    alt = interpolate_gaps(altitude, ~np.isfinite(altitude), distance_m)
    alt, spikes = despike_elevation(distance_m, alt)
    if spikes:
        warns.append(
            f"{spikes} elevation spike(s) (over {ELEVATION_SPIKE_M:.0f} m off their neighbours "
            f"and steeper than {100 * GRADE_LIMIT:.0f}%) replaced by interpolation"
        )
    return alt, True


def _course_distance(points: RoutePoints, warns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Distance along the route (m, from 0) and the indices of the points it is known at."""
    dist = points.distance
    if dist is not None and np.isfinite(dist).mean() >= MIN_DISTANCE_FRACTION:
        known = np.flatnonzero(np.isfinite(dist))
        if np.all(np.diff(dist[known]) >= 0):
            return dist[known] - dist[known[0]], known
        warns.append("the course's distances decrease somewhere: distance from the positions")
    if points.latitude is None or points.longitude is None:
        raise ActivityError("the route has no usable positions or distances: nothing to plan")
    known = np.flatnonzero(np.isfinite(points.latitude) & np.isfinite(points.longitude))
    if known.size < 2:
        raise ActivityError("the route has fewer than 2 positions: nothing to plan")
    steps = step_distances_km(points.latitude[known], points.longitude[known]) * 1000.0
    return np.r_[0.0, np.cumsum(steps)], known


def route_from_points(points: RoutePoints) -> Route:
    """A route file's points as a `Route` (module doc)."""
    warns = list(points.warnings)
    dist, known = _course_distance(points, warns)
    ahead = np.r_[True, dist[1:] > np.maximum.accumulate(dist)[:-1] + MIN_STEP_M]
    keep = known[ahead]
    dist = dist[ahead]
    if dist[-1] < MIN_ROUTE_M:
        raise ActivityError(
            f"the route is only {dist[-1]:.0f} m long (at least {MIN_ROUTE_M:.0f} m): nothing "
            "to plan"
        )
    alt = None if points.altitude is None else points.altitude[keep]
    altitude, has_alt = _elevation(dist, alt, warns)
    lat = None if points.latitude is None else points.latitude[keep]
    lon = None if points.longitude is None else points.longitude[keep]
    if lat is not None and lon is not None and not np.isfinite(lat + lon).all():
        ok = np.isfinite(lat + lon)
        lat = lat if ok.sum() < 2 else np.interp(dist, dist[ok], lat[ok])
        lon = lon if ok.sum() < 2 else np.interp(dist, dist[ok], lon[ok])
    return Route(dist, altitude, lat, lon, points.source, has_alt, None, warns)


def route_from_activity(activity: Activity, step_s: float, speed: SpeedConfig) -> Route:
    """A recording as a `Route` with its recorded pace (module doc): the grid `hrpred
    predict` predicts on, the distance being its speed's (a recording gap's steps cover the
    gap's distance at its average speed, as predict sees them; a step without movement is
    time standing at the point)."""
    grid = resample_activity(activity, step_s, speed)
    covered = np.r_[0.0, grid.speed_kmh[1:] / 3.6 * step_s]
    moves = np.r_[True, covered[1:] > MIN_STEP_M]  # the points the runner arrives at
    idx = np.flatnonzero(moves)
    dist = np.cumsum(covered)[idx]
    t = grid.timestamp - grid.timestamp[0]
    # standing at point j: from arriving until the step before reaching point j + 1
    leave = np.r_[t[idx[1:] - 1], t[-1]]
    warns = list(activity.warnings) + list(grid.warnings)
    if dist[-1] < MIN_ROUTE_M:
        raise ActivityError(
            f"{activity.source}: the recording covers only {dist[-1]:.0f} m (at least "
            f"{MIN_ROUTE_M:.0f} m): nothing to plan"
        )
    has_alt = activity.altitude is not None
    altitude, _ = _elevation(dist, grid.altitude_m[idx] if has_alt else None, warns)
    lat = on_grid(activity.timestamp, activity.latitude, grid.timestamp)
    lon = on_grid(activity.timestamp, activity.longitude, grid.timestamp)
    start = float(activity.timestamp[0])
    gaps = tuple((a, a + length) for a, length in grid.pauses)
    recorded = Recorded(
        t[idx],
        leave - t[idx],
        start if start >= MIN_TIMESTAMP_S else None,
        float(grid.speed_kmh[0]),
        gaps,
    )
    return Route(
        dist,
        altitude,
        None if lat is None else lat[idx],
        None if lon is None else lon[idx],
        activity.source,
        has_alt,
        recorded,
        warns,
    )


def load_route(path: str | Path, step_s: float, speed: SpeedConfig) -> Route:
    """The route in a route file or a recorded activity (module doc); ActivityError (one line,
    naming the file) when it cannot give one."""
    points = read_route_points(path)
    if points is None:
        activity = read_activity(path)
        return route_from_activity(activity, step_s, speed)
    try:
        return route_from_points(points)
    except ActivityError as exc:
        raise ActivityError(f"{points.source}: {exc}") from None


@dataclass(frozen=True)
class Course:
    """A route cut into segments: `edges_m` [J + 1] (SEGMENT_M apart, the last segment
    shorter) and each segment's `grade` [J] (rise / run)."""

    edges_m: np.ndarray
    grade: np.ndarray

    @property
    def lengths_m(self) -> np.ndarray:
        return np.diff(self.edges_m)


def course(route: Route) -> Course:
    """The route's segments and their grades (module doc)."""
    total = route.length_m
    edges = np.arange(0.0, total, SEGMENT_M)
    if total - edges[-1] < 0.5 * SEGMENT_M and edges.size > 1:
        edges = edges[:-1]  # no sliver at the end: the last segment is up to 1.5 x long
    edges = np.r_[edges, total]
    alt = np.interp(edges, route.distance_m, route.altitude_m)
    window = int(round(GRADE_WINDOW_M / SEGMENT_M)) | 1
    smooth = moving_average(alt, window, causal=False)
    grade = np.clip(np.diff(smooth) / np.diff(edges), -GRADE_LIMIT, GRADE_LIMIT)
    return Course(edges, grade)
