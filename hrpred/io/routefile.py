"""Route files for `hrpred plan`: where a run will go, without times.

`read_route_points(path)` reads a GPX route (`<rte>`/`<rtept>`), a GPX track without times,
or a TCX course (`<Courses>`: a course's times are a virtual partner's, ignored) into
`RoutePoints` (positions, elevation, and the course's distance where a TCX gives it), and
returns None for a recording (a GPX track or TCX activity whose points have times, a FIT or
CSV file): `hrpred.io.userfiles.read_activity` reads those. Files are read like activity files
(size limits, gzip, encodings: `hrpred.io.userfiles.read_file_bytes`); a file that cannot give
a route raises `ActivityError` with a one-line reason naming it, and nothing else escapes.
Values outside physical ranges (positions, `hrpred.io.limits.ALTITUDE_RANGE_M`) are masked and
reported in `warnings`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hrpred.io.activity import (
    ActivityError,
    check_points,
    local,
    mask_range,
    one_line,
    to_float,
    unix,
)
from hrpred.io.gpxtcx import tcx_root, tcx_trackpoints, xml_text
from hrpred.io.limits import ALTITUDE_RANGE_M, DISTANCE_RANGE_M
from hrpred.io.userfiles import file_kind, read_file_bytes, reader_errors

ROUTE_KINDS = ("gpx", "tcx")  # FIT and CSV files are recordings


@dataclass
class RoutePoints:
    """A route's points in file order: positions (deg), elevation (m) and distance along the
    route (m, a TCX course's), NaN where a point lacks one; None for a channel no point has."""

    latitude: np.ndarray | None
    longitude: np.ndarray | None
    altitude: np.ndarray | None
    distance: np.ndarray | None
    source: str
    warnings: list[str] = field(default_factory=list)


def _timed(times: list[float], what: str, warns: list[str]) -> bool:
    """True when most points have a time (a recording); warns when a route has a few."""
    n_timed = sum(math.isfinite(t) for t in times)
    if times and 2 * n_timed >= len(times):
        return True
    if n_timed:
        warns.append(
            f"times on only {n_timed} of {len(times)} {what}: ignored (planned as a route)"
        )
    return False


def _gpx_points(data: bytes, warns: list[str]) -> dict[str, list[float]] | None:
    import gpxpy
    import gpxpy.gpx

    try:
        gpx = gpxpy.parse(xml_text(data))
    except (gpxpy.gpx.GPXException, ValueError) as exc:
        raise ActivityError(f"not a valid GPX file ({one_line(exc)})") from None
    track = [p for t in gpx.tracks for s in t.segments for p in s.points]
    check_points(len(track))
    if _timed([unix(p.time) for p in track], "track points", warns):
        return None
    points = track or [p for r in gpx.routes for p in r.points]
    check_points(len(points))
    if not points:
        only = " (only waypoints)" if gpx.waypoints else ""
        raise ActivityError(f"GPX has no route or track points{only}: nothing to plan")
    parts = len(gpx.tracks) if track else len(gpx.routes)
    if parts > 1:
        warns.append(f"{parts} {'tracks' if track else 'routes'} in the file: joined in file order")
    return {
        "latitude": [to_float(p.latitude) for p in points],
        "longitude": [to_float(p.longitude) for p in points],
        "altitude": [to_float(p.elevation) for p in points],
        "distance": [math.nan] * len(points),
    }


def _tcx_points(data: bytes, warns: list[str]) -> dict[str, list[float]] | None:
    root = tcx_root(data)
    courses = [el for el in root.iter() if local(el.tag) == "Course"]
    cols: dict[str, list[float]] = {
        k: [] for k in ("timestamp", "latitude", "longitude", "altitude", "distance")
    }
    for top in courses or [root]:
        tcx_trackpoints(top, cols)
    times = cols.pop("timestamp")
    if not courses and _timed(times, "track points", warns):
        return None
    if not times:
        raise ActivityError("TCX has no course or track points: nothing to plan")
    return cols


def _any(x: np.ndarray) -> bool:
    return bool(np.isfinite(x).any())


def _channels(cols: dict[str, list[float]], source: str, warns: list[str]) -> RoutePoints:
    """Arrays of the collected columns, values outside physical ranges masked."""
    arr = {k: np.asarray(v, dtype=np.float64) for k, v in cols.items()}
    lat, lon = arr["latitude"], arr["longitude"]
    ok = np.isfinite(lat) & np.isfinite(lon)
    ok &= (np.abs(lat) <= 90) & (np.abs(lon) <= 180) & ~((lat == 0) & (lon == 0))
    bad = int((np.isfinite(lat) & ~ok).sum())
    if bad:
        warns.append(f"{bad} positions out of range or at (0, 0) ignored")
    has_pos = ok.sum() >= 2
    alt, dist = arr["altitude"], arr["distance"]
    alt = mask_range(alt, *ALTITUDE_RANGE_M, "altitude values (m)", warns) if _any(alt) else None
    dist = mask_range(dist, *DISTANCE_RANGE_M, "distance values (m)", warns) if _any(dist) else None
    if not has_pos and dist is None:
        what = "only 1 position" if ok.sum() == 1 else "no positions"
        raise ActivityError(
            f"the route has {what} (fewer than 2) and no distances: nothing to plan"
        )
    return RoutePoints(
        latitude=np.where(ok, lat, np.nan) if has_pos else None,
        longitude=np.where(ok, lon, np.nan) if has_pos else None,
        altitude=alt,
        distance=dist,
        source=source,
        warnings=warns,
    )


def read_route_points(path: str | Path) -> RoutePoints | None:
    """The route in a GPX or TCX file (module doc); None when the file is a recording."""
    path = Path(path)
    kind = file_kind(path)
    if kind not in ROUTE_KINDS:
        return None
    if not path.exists():
        raise ActivityError(f"{path}: file not found")
    if path.is_dir():
        raise ActivityError(f"{path}: is a directory, not a route file")
    warns: list[str] = []
    with reader_errors(kind, path.name):
        data = read_file_bytes(path, warns)
        if not data:
            raise ActivityError("empty file")
        cols = (_gpx_points if kind == "gpx" else _tcx_points)(data, warns)
        del data
        return None if cols is None else _channels(cols, path.name, warns)
