"""Workout kinematics: sampling times, pace profiles (archetypes), terrain and GPS track.

All functions work on a batch of B workouts with n points each ([B, n] arrays), except
`relative_pace`, which builds one workout's pace profile.
"""

from __future__ import annotations

import numpy as np

from hrpred.simulate.physiology import smooth_noise
from hrpred.timeseries import EARTH_RADIUS_KM

EARTH_RADIUS_M = EARTH_RADIUS_KM * 1000.0


def sample_steps(
    rng: np.random.Generator, batch: int, n: int, mean_s: float, spread: float, jitter: float
) -> np.ndarray:
    """Irregular whole-second sampling intervals [B, n] (dt[:, 0] = 0).

    Each workout has its own typical interval (lognormal around `mean_s`), and each step
    jitters around it (gamma with coefficient of variation `jitter`; 0 = every step the
    typical one), like a GPS watch logging by time and distance.
    """
    typical = mean_s * rng.lognormal(-0.5 * spread**2, spread, batch)
    if jitter > 0:
        dt = np.rint(typical[:, None] * rng.gamma(1.0 / jitter**2, jitter**2, (batch, n)))
    else:
        dt = np.rint(np.repeat(typical[:, None], n, axis=1))
    dt = np.maximum(dt, 1.0)
    dt[:, 0] = 0.0
    return dt


def _levels(t: np.ndarray, bounds: list[float], levels: list[float]) -> np.ndarray:
    idx = np.searchsorted(np.asarray(bounds), t, side="right") - 1
    return np.asarray(levels)[np.clip(idx, 0, len(levels) - 1)]


def relative_pace(rng: np.random.Generator, archetype: str, t: np.ndarray) -> np.ndarray:
    """Target speed as a fraction of the sport's typical speed, at elapsed times `t` (s)."""
    total = max(float(t[-1]), 1.0)
    if archetype == "easy":  # recovery jogs to easy runs (real runners' pace varies widely)
        return np.full(t.shape, rng.uniform(0.60, 0.86))
    if archetype == "steady":
        return np.full(t.shape, rng.uniform(0.83, 0.99))
    if archetype == "hilly":
        return np.full(t.shape, rng.uniform(0.76, 0.92))
    if archetype == "progressive":
        start, end = rng.uniform(0.64, 0.76), rng.uniform(0.95, 1.05)
        return start + (end - start) * t / total
    if archetype == "intervals":
        bounds, levels = [0.0], [rng.uniform(0.65, 0.75)]  # warm-up
        clock = total * rng.uniform(0.10, 0.18)
        work, rest = rng.uniform(1.0, 1.15), rng.uniform(0.40, 0.60)
        rep_s, rest_s = rng.uniform(60, 300), rng.uniform(60, 180)
        while clock < total * 0.88:
            bounds += [clock, clock + rep_s]
            levels += [work * rng.uniform(0.97, 1.03), rest]
            clock += rep_s + rest_s
        bounds.append(clock)
        levels.append(rng.uniform(0.6, 0.7))  # cool-down
        return _levels(t, bounds, levels)
    raise ValueError(f"unknown archetype {archetype!r}")


def add_stops(rng: np.random.Generator, t: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """Zero the pace during 1-3 stops of 15-120 s (traffic lights, a drink)."""
    rel = rel.copy()
    total = float(t[-1])
    for _ in range(1 + rng.poisson(0.8)):
        start = rng.uniform(0.08, 0.92) * total
        rel[(t >= start) & (t < start + rng.uniform(15, 120))] = 0.0
    return rel


TERRAIN_SHAPES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    # name: (amplitude of each of 3 sine components (m), wavelength (m))
    "flat": ((0.5, 3.0), (500.0, 3000.0)),
    "rolling": ((4.0, 15.0), (800.0, 3000.0)),
    "hilly": ((12.0, 40.0), (1200.0, 5000.0)),
}


def terrain_params(rng: np.random.Generator, terrains: list[str]) -> tuple[np.ndarray, ...]:
    """Random altitude profiles: base altitude [B] and 3 sine components [B, 3] each."""
    b = len(terrains)
    amp = np.empty((b, 3))
    wave = np.empty((b, 3))
    for i, name in enumerate(terrains):
        (a_lo, a_hi), (w_lo, w_hi) = TERRAIN_SHAPES[name]
        amp[i] = rng.uniform(a_lo, a_hi, 3)
        wave[i] = rng.uniform(w_lo, w_hi, 3)
    phase = rng.uniform(0, 2 * np.pi, (b, 3))
    # Mostly lowland, some mid-altitude, a few mountain towns.
    base = np.where(
        rng.random(b) < 0.65,
        rng.uniform(-5, 150, b),
        np.where(rng.random(b) < 0.8, rng.uniform(150, 600, b), rng.uniform(600, 1800, b)),
    )
    return base, amp, wave, phase


def altitude_and_grade(
    terrain: tuple[np.ndarray, ...], dist_m: np.ndarray, with_altitude: bool = True
) -> tuple[np.ndarray | None, np.ndarray]:
    """True altitude (m, or None) and grade (rise/run) at cumulative distances [B, n]."""
    base, amp, wave, phase = terrain
    grade = np.zeros(dist_m.shape)
    alt = np.repeat(base[:, None], dist_m.shape[1], axis=1) if with_altitude else None
    for k in range(amp.shape[1]):  # 3 components: loop, keep arrays 2-D (cheaper)
        arg = dist_m * (2 * np.pi / wave[:, k : k + 1]) + phase[:, k : k + 1]
        grade += (amp[:, k] * 2 * np.pi / wave[:, k])[:, None] * np.cos(arg)
        if alt is not None:
            alt += amp[:, k : k + 1] * np.sin(arg)
    return alt, np.clip(grade, -0.25, 0.25)


def gps_track(
    rng: np.random.Generator,
    step_m: np.ndarray,
    start_lat: np.ndarray,
    start_lon: np.ndarray,
    noise_m: float = 1.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Latitude/longitude (deg) [B, n] of a wandering path with the given step lengths.

    The heading random-walks; GPS error is slow noise (metres), so the haversine speed
    between consecutive points recovers the true speed within a fraction of a km/h.
    """
    b, n = step_m.shape
    heading = rng.uniform(0, 2 * np.pi, (b, 1)) + np.cumsum(rng.normal(0, 0.12, (b, n)), axis=1)
    north = np.cumsum(step_m * np.cos(heading), axis=1) + smooth_noise(rng, (b, n), noise_m, 10)
    east = np.cumsum(step_m * np.sin(heading), axis=1) + smooth_noise(rng, (b, n), noise_m, 10)
    lat = start_lat[:, None] + np.degrees(north / EARTH_RADIUS_M)
    lon = start_lon[:, None] + np.degrees(east / (EARTH_RADIUS_M * np.cos(np.radians(lat))))
    return lat, lon
