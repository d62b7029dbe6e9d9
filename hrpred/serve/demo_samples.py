"""Sample workouts for the demo app, generated on the fly (no binary files in the repo).

A small deterministic generator: a speed profile made of segments, a terrain profile,
a GPS track that follows the distance run, and a synthetic recorded HR from a first-order
response model, so the app can show recorded HR and an MAE. These are demo inputs only:
the model never trains on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from hrpred.timeseries import EARTH_RADIUS_KM

EARTH_RADIUS_M = EARTH_RADIUS_KM * 1000.0
START_LAT = 46.2044  # deg, an arbitrary park-sized loop
START_LON = 6.1432
START_TIME = 1_700_000_000  # Unix s, fixed so every file is byte-identical


@dataclass(frozen=True)
class SampleSpec:
    """How to generate one sample: speed segments, terrain and HR-response settings."""

    slug: str
    segments: tuple[tuple[float, float], ...]  # (duration s, speed km/h)
    hill_amplitude_m: float  # peak-to-mean altitude change (m)
    hill_period_m: float  # distance between hilltops (m)
    base_altitude_m: float
    seed: int


@dataclass(frozen=True)
class SampleWorkout:
    """A generated workout sampled every `step_s` seconds."""

    name: str
    slug: str
    timestamp: np.ndarray  # Unix s, int64
    speed_kmh: np.ndarray
    altitude_m: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    heart_rate: np.ndarray  # synthetic recorded HR (BPM)


def _intervals(reps: int, on_s: float, on_kmh: float, off_s: float, off_kmh: float) -> tuple:
    return tuple(seg for _ in range(reps) for seg in ((on_s, on_kmh), (off_s, off_kmh)))


SAMPLES: dict[str, SampleSpec] = {
    "Easy run, 35 min, flat": SampleSpec(
        slug="easy_flat",
        segments=((300, 8.5), (1500, 10.0), (300, 9.0)),
        hill_amplitude_m=2.0,
        hill_period_m=1500.0,
        base_altitude_m=380.0,
        seed=1,
    ),
    "Hilly run, 45 min": SampleSpec(
        slug="hilly",
        segments=((600, 9.0), (1500, 10.5), (600, 9.5)),
        hill_amplitude_m=35.0,
        hill_period_m=1800.0,
        base_altitude_m=520.0,
        seed=2,
    ),
    "Intervals, 6 x 3 min": SampleSpec(
        slug="intervals",
        segments=((600, 9.0), *_intervals(6, 180, 15.0, 120, 8.0), (480, 8.5)),
        hill_amplitude_m=4.0,
        hill_period_m=1000.0,
        base_altitude_m=150.0,
        seed=3,
    ),
}


def sample_names() -> list[str]:
    """Names shown in the app's sample picker, in a fixed order."""
    return list(SAMPLES)


def _speed_profile(segments: tuple[tuple[float, float], ...], step_s: float) -> np.ndarray:
    """Piecewise-constant speed, smoothed over ~10 s so changes look like a runner's."""
    steps = [np.full(round(d / step_s), v, dtype=np.float64) for d, v in segments]
    raw = np.concatenate(steps)
    width = max(1, round(10.0 / step_s))
    padded = np.pad(raw, (width, width), mode="edge")
    kernel = np.ones(width) / width
    return np.convolve(padded, kernel, mode="same")[width:-width]


def _hr_response(speed_kmh: np.ndarray, grade: np.ndarray, step_s: float, seed: int) -> np.ndarray:
    """Synthetic HR: steady state from speed and grade, first-order lag, drift, sensor noise."""
    rest, hr_max = 55.0, 192.0
    steady = rest + 7.2 * speed_kmh + 350.0 * np.clip(grade, -0.05, 0.15)
    steady = np.minimum(steady, hr_max)
    tau_s = 35.0
    alpha = step_s / (tau_s + step_s)
    hr = np.empty_like(steady)
    level = 90.0
    for i, target in enumerate(steady):
        level += alpha * (target - level)
        hr[i] = level
    drift = 4.0 * np.arange(hr.size) * step_s / 3600.0  # cardiac drift, bpm per hour
    noise = np.random.default_rng(seed).normal(0.0, 1.2, hr.size)
    return np.round(hr + drift + noise)


def generate_sample(name: str, step_s: float = 1.0) -> SampleWorkout:
    """Generate the named sample deterministically."""
    if name not in SAMPLES:
        raise KeyError(f"unknown sample {name!r}; choose one of {sample_names()}")
    spec = SAMPLES[name]
    speed = _speed_profile(spec.segments, step_s)
    n = speed.size
    # distance at each sample: the speed of a sample is held over the step before it
    dist_m = np.concatenate([[0.0], np.cumsum(speed[1:] / 3.6 * step_s)])
    altitude = spec.base_altitude_m + spec.hill_amplitude_m * np.sin(
        2 * math.pi * dist_m / spec.hill_period_m
    )
    grade = np.gradient(altitude, dist_m, edge_order=1) if n > 1 else np.zeros(n)
    grade = np.nan_to_num(grade)
    # the track is a circle whose circumference is 2.5 km: heading turns with distance
    radius_m = 2500.0 / (2 * math.pi)
    angle = dist_m / radius_m
    north_m = radius_m * np.sin(angle)
    east_m = radius_m * (1 - np.cos(angle))
    lat = START_LAT + np.degrees(north_m / EARTH_RADIUS_M)
    lon = START_LON + np.degrees(east_m / (EARTH_RADIUS_M * math.cos(math.radians(START_LAT))))
    timestamp = START_TIME + np.round(np.arange(n) * step_s).astype(np.int64)
    return SampleWorkout(
        name=name,
        slug=spec.slug,
        timestamp=timestamp,
        speed_kmh=speed,
        altitude_m=altitude,
        latitude=lat,
        longitude=lon,
        heart_rate=_hr_response(speed, grade, step_s, spec.seed),
    )


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(int(ts), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_gpx(workout: SampleWorkout) -> str:
    """GPX 1.1 text with elevation, time and HR (Garmin TrackPointExtension v1)."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<gpx version="1.1" creator="hrpred demo samples"'
        ' xmlns="http://www.topografix.com/GPX/1/1"'
        ' xmlns:gpxtpx="http://www.garmin.com/xmlschemas/TrackPointExtension/v1">',
        f"  <trk><name>{escape(workout.name)}</name><type>running</type><trkseg>",
    ]
    for ts, lat, lon, ele, hr in zip(
        workout.timestamp,
        workout.latitude,
        workout.longitude,
        workout.altitude_m,
        workout.heart_rate,
        strict=True,
    ):
        lines.append(
            f'    <trkpt lat="{lat:.7f}" lon="{lon:.7f}"><ele>{ele:.2f}</ele>'
            f"<time>{_iso(ts)}</time><extensions><gpxtpx:TrackPointExtension>"
            f"<gpxtpx:hr>{int(hr)}</gpxtpx:hr></gpxtpx:TrackPointExtension></extensions></trkpt>"
        )
    lines += ["  </trkseg></trk>", "</gpx>", ""]
    return "\n".join(lines)


def write_sample_gpx(name: str, directory: str | Path) -> Path:
    """Write the named sample as `<directory>/sample_<slug>.gpx` and return its path."""
    workout = generate_sample(name)
    path = Path(directory) / f"sample_{workout.slug}.gpx"
    path.write_text(to_gpx(workout), encoding="utf-8")
    return path
