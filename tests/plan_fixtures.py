"""Route files for the plan tests, the plan benchmark and the README's example, all generated
here (no route file is committed): GPX routes (`<rte>`) and tracks without times, TCX courses,
and `hilly_loop`, a 10 km loop with one real climb in the style of ../shared/samples.

    python -m tests.plan_fixtures hills.gpx     # writes the README's example route
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from tests.predict_fixtures import EARTH_RADIUS_M, Workout

LAT0, LON0 = 46.20, 6.14  # somewhere hilly enough (deg)


def positions(east_m: np.ndarray, north_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude (deg) of points east and north of (LAT0, LON0), in metres."""
    lat = LAT0 + np.degrees(north_m / EARTH_RADIUS_M)
    lon = LON0 + np.degrees(east_m / (EARTH_RADIUS_M * math.cos(math.radians(LAT0))))
    return lat, lon


def hilly_loop(
    length_m: float = 10_000.0, spacing_m: float = 20.0, climb_m: float = 60.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A loop of `length_m` (a circle) with one climb of `climb_m` over its second and third
    kilometres, a descent over the sixth to eighth and rolling ground elsewhere: latitude,
    longitude and elevation every `spacing_m`."""
    d = np.arange(0.0, length_m + spacing_m / 2, spacing_m)
    radius = length_m / (2 * math.pi)
    angle = d / radius
    lat, lon = positions(radius * np.sin(angle), radius * (1 - np.cos(angle)))
    frac = d / length_m
    climb = climb_m * np.clip((frac - 0.1) / 0.2, 0, 1) * (1 - np.clip((frac - 0.5) / 0.3, 0, 1))
    rolling = 4.0 * np.sin(2 * math.pi * d / 700.0)
    return lat, lon, 380.0 + climb + rolling


def write_route_gpx(
    path: Path,
    lat: np.ndarray,
    lon: np.ndarray,
    ele: np.ndarray | None = None,
    *,
    kind: str = "rte",
) -> Path:
    """A GPX 1.1 route (`rte`: `<rtept>`) or track without times (`trk`)."""
    tag = "rtept" if kind == "rte" else "trkpt"
    rows = []
    for i in range(len(lat)):
        e = "" if ele is None else f"<ele>{float(ele[i]):.2f}</ele>"
        rows.append(f'<{tag} lat="{lat[i]:.7f}" lon="{lon[i]:.7f}">{e}</{tag}>')
    body = "\n".join(rows)
    inner = f"<rte><name>route</name>\n{body}\n</rte>" if kind == "rte" else (
        f"<trk><name>route</name><trkseg>\n{body}\n</trkseg></trk>"
    )  # fmt: skip
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<gpx version="1.1" creator="hrpred tests" '
        f'xmlns="http://www.topografix.com/GPX/1/1">\n{inner}\n</gpx>\n',
        encoding="utf-8",
    )
    return path


def write_tcx_course(
    path: Path,
    lat: np.ndarray,
    lon: np.ndarray,
    ele: np.ndarray,
    dist: np.ndarray,
    *,
    times: bool = True,
) -> Path:
    """A TCX course (`<Courses>`), with a virtual partner's times when `times`."""
    rows = []
    for i in range(len(lat)):
        t = f"<Time>2024-05-01T08:{i // 60 % 60:02d}:{i % 60:02d}Z</Time>" if times else ""
        rows.append(
            f"<Trackpoint>{t}<Position><LatitudeDegrees>{lat[i]:.7f}</LatitudeDegrees>"
            f"<LongitudeDegrees>{lon[i]:.7f}</LongitudeDegrees></Position>"
            f"<AltitudeMeters>{ele[i]:.2f}</AltitudeMeters>"
            f"<DistanceMeters>{dist[i]:.2f}</DistanceMeters></Trackpoint>"
        )
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<TrainingCenterDatabase '
        'xmlns="http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2">'
        "<Courses><Course><Name>course</Name><Track>\n"
        + "\n".join(rows)
        + "\n</Track></Course></Courses></TrainingCenterDatabase>\n",
        encoding="utf-8",
    )
    return path


def route_of(path: Path, w: Workout) -> Path:
    """The workout's track as a GPX track without times (its timestamps dropped)."""
    return write_route_gpx(path, w.latitude, w.longitude, w.altitude_m, kind="trk")


def with_pause(w: Workout, at: int, seconds: int) -> Workout:
    """The workout with the runner standing for `seconds` after point `at` (the watch
    paused: no points in between, the position unchanged)."""
    from dataclasses import replace

    t = w.timestamp.copy()
    t[at + 1 :] += seconds
    return replace(w, timestamp=t)


def with_standing(w: Workout, at: int, n: int) -> Workout:
    """The workout with the runner standing still for `n` points from point `at`, the watch
    running (speed 0, the position held)."""
    from dataclasses import replace

    speed, lat, lon, dist = (x.copy() for x in (w.speed_kmh, w.latitude, w.longitude, w.distance_m))
    speed[at : at + n] = 0.0
    for x in (lat, lon, dist):
        x[at : at + n] = x[at]
    return replace(w, speed_kmh=speed, latitude=lat, longitude=lon, distance_m=dist)


def write_sample_route(path: Path) -> Path:
    """The README's example: `hilly_loop()` as a GPX route."""
    return write_route_gpx(path, *hilly_loop())


if __name__ == "__main__":
    print(write_sample_route(Path(sys.argv[1] if len(sys.argv) > 1 else "hills.gpx")))
