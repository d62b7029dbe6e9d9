"""Fault injection: the recording problems the clean stage must find.

`apply_fault` edits one workout's recorded arrays in place and returns where the fault is
(step indices, end exclusive) and the sensor offset for offset faults; outside that span the
arrays are left as they were. `corrupt_line` damages a serialised line (malformed_line). At
most one fault per workout.

Besides the original short faults, the real failure modes of optical and chest sensors:
slow_lock (the first minutes read low or at cadence), cadence_follow / whole_run_lock (HR
reads the runner's step cadence, which follows pace), stuck_low (the whole workout reads
60-100 BPM), lagging_noisy (a long segment lags the truth and is noisy), low_dropout
(implausibly low values, not 0) and strap_drying (too low early, recovering smoothly).
"""

from __future__ import annotations

import numpy as np

from hrpred.simulate.config import HR_FAULTS
from hrpred.simulate.workouts import EARTH_RADIUS_M

NO_FAULT = (-1, -1, 0.0)

# A recorded HR sample this far from the heart's is a bad point (truth `fault_bad_points`):
# what a person marking bad HR by hand would mark. A lock that reads about what the heart
# does, or a flatline of a steady HR, leaves few. An HR fault with fewer than
# min(MIN_BAD_POINTS, half its span) is not one a person would see (truth `fault_visible`;
# hand-labelled real runs count as bad from 25 bad points). Measurement only.
BAD_POINT_BPM = 10.0
MIN_BAD_POINTS = 25


def bad_points(recorded: np.ndarray, heart: np.ndarray) -> int:
    """Samples of the recorded HR at least BAD_POINT_BPM from the heart's (over the common
    length: a length_mismatch fault may cut the HR array)."""
    m = min(recorded.size, heart.size)
    return int(np.count_nonzero(np.abs(recorded[:m] - heart[:m]) >= BAD_POINT_BPM))


def fault_visible(kind: str, start: int, end: int, bad: int) -> bool:
    """Whether a person would see the fault: any fault but an HR fault (config.HR_FAULTS)
    with fewer than min(MIN_BAD_POINTS, half its span [start, end)) bad points."""
    if kind not in HR_FAULTS:
        return True
    return bad >= max(min(MIN_BAD_POINTS, int(np.ceil((end - start) / 2))), 1)


def _segment(rng: np.random.Generator, n: int, lo: int, hi: int) -> tuple[int, int]:
    length = int(rng.integers(lo, hi + 1))
    length = min(length, n - 2)
    start = int(rng.integers(1, n - length))
    return start, start + length


def _lock_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.normal(0, 1.5, size)


def _first_step_after(rec: dict[str, np.ndarray], seconds: float) -> int:
    """First step at least `seconds` after the start (at least 1, at most n - 1)."""
    ts = rec["timestamp"]
    n = ts.size
    return int(np.clip(np.searchsorted(ts - ts[0], seconds, side="left"), 1, n - 1))


def _sensor_fault(
    rng: np.random.Generator, kind: str, rec: dict[str, np.ndarray], cadence: np.ndarray
) -> tuple[int, int, float] | None:
    """The real-sensor HR faults (module doc); None for any other kind."""
    hr = rec["heart_rate"]
    n = hr.size
    if kind == "slow_lock":
        # Optical sensor locks late: reads low and drifting up, or the cadence, then joins.
        end = _first_step_after(rec, rng.uniform(60, 300))
        if rng.random() < 0.5:
            first = rng.uniform(60, 85)
            last = min(first + rng.uniform(5, 15), 100.0)
            hr[:end] = np.linspace(first, last, end) + rng.normal(0, 1.0, end)
        else:
            hr[:end] = cadence[:end] + _lock_noise(rng, end)
        return 0, end, 0.0
    if kind == "cadence_follow":
        start, end = _segment(rng, n, 20, 150)
        hr[start:end] = cadence[start:end] + _lock_noise(rng, end - start)
        return start, end, 0.0
    if kind == "whole_run_lock":
        hr[:] = cadence + _lock_noise(rng, n)
        return 0, n, 0.0
    if kind == "stuck_low":
        level = rng.uniform(65, 95)
        wander = np.cumsum(rng.normal(0, 0.4, n))
        wander -= np.linspace(0, wander[-1], n)  # a bridge: starts and ends at the level
        hr[:] = np.clip(level + wander + rng.normal(0, 1.5, n), 60, 100)
        return 0, n, 0.0
    if kind == "lagging_noisy":
        length = int(rng.uniform(0.2, 0.6) * n)
        start = int(rng.integers(0, n - length + 1))
        end = start + length
        t = rec["timestamp"].astype(np.float64)
        lag, sd = rng.uniform(20, 90), rng.uniform(4, 10)
        lagged = np.interp(t[start:end] - lag, t, hr)  # before the first sample: its value
        hr[start:end] = lagged + rng.normal(0, sd, length)
        return start, end, 0.0
    if kind == "low_dropout":
        start, end = _segment(rng, n, 5, 60)
        level = rng.uniform(30, 55)
        hr[start:end] = np.clip(level + rng.normal(0, 3, end - start), 25, 60)
        return start, end, 0.0
    if kind == "strap_drying":
        # A dry chest strap under-reads until sweat makes contact: the factor rises smoothly
        # (half a cosine) from 0.6-0.85 to 1 over the first 3-15 min.
        end = _first_step_after(rec, rng.uniform(180, 900))
        ts = rec["timestamp"][:end]
        frac = (ts - ts[0]) / max(float(rec["timestamp"][end] - ts[0]), 1.0)
        low = rng.uniform(0.6, 0.85)
        hr[:end] *= low + (1 - low) * 0.5 * (1 - np.cos(np.pi * frac))
        return 0, end, 0.0
    return None


def apply_fault(
    rng: np.random.Generator,
    kind: str,
    rec: dict[str, np.ndarray],
    offset_range: tuple[float, float],
    cadence: np.ndarray,
) -> tuple[int, int, float]:
    """Inject fault `kind` into `rec` (timestamp, heart_rate, altitude, latitude, longitude,
    optional speed); `cadence` is the runner's step cadence at each step (steps/min), read
    by the lock faults. Returns (fault_start, fault_end, offset_bpm)."""
    hr = rec["heart_rate"]
    n = hr.size
    if kind in ("none", "malformed_line"):
        return NO_FAULT
    sensor = _sensor_fault(rng, kind, rec, cadence)
    if sensor is not None:
        return sensor
    if kind == "offset_full":
        # Strap slipping / optical sensor under-reading for the whole workout.
        offset = float(rng.uniform(*offset_range))
        hr -= offset
        return 0, n, offset
    if kind == "offset_partial":
        offset = float(rng.uniform(*offset_range))
        start = int(rng.integers(int(0.15 * n), int(0.8 * n)))
        end = n if rng.random() < 0.7 else int(rng.integers(start + n // 10, n + 1))
        hr[start:end] -= offset
        return start, end, offset
    if kind == "dropout":
        start, end = _segment(rng, n, 5, 40)
        hr[start:end] = 0.0
        return start, end, 0.0
    if kind == "flatline":
        start, end = _segment(rng, n, 30, 150)
        hr[start:end] = np.rint(hr[start])
        return start, end, 0.0
    if kind == "spike":
        start, end = _segment(rng, n, 1, 3)
        hr[start:end] = np.minimum(hr[start:end] + rng.uniform(60, 110), 250.0)
        return start, end, 0.0
    if kind == "cadence_lock":
        # Optical sensor locks onto the step cadence (~170-190 spm) for a while.
        start, end = _segment(rng, n, 20, 120)
        hr[start:end] = rng.uniform(170, 190) + rng.normal(0, 1.5, end - start)
        return start, end, 0.0
    if kind == "gps_spike":
        start, end = _segment(rng, n, 1, 3)
        jump = rng.uniform(300, 1500)  # metres off track and back
        angle = rng.uniform(0, 2 * np.pi)
        lat = rec["latitude"]
        rec["latitude"][start:end] += np.degrees(jump * np.cos(angle) / EARTH_RADIUS_M)
        rec["longitude"][start:end] += np.degrees(
            jump * np.sin(angle) / (EARTH_RADIUS_M * np.cos(np.radians(lat[start])))
        )
        if "speed" in rec:
            rec["speed"][start:end] = rng.uniform(60, 150, end - start)
        return start, end, 0.0
    if kind == "timestamp_gap":
        # Recording paused/lost: the clock jumps forward by 5-60 min.
        start = int(rng.integers(n // 10, n - n // 10))
        rec["timestamp"][start:] += int(rng.integers(300, 3600))
        return start, start + 1, 0.0
    if kind == "timestamp_nonmonotonic":
        # Clock steps back (e.g. a GPS time correction) for a short segment.
        start, end = _segment(rng, n, 1, 20)
        back = int(rng.integers(30, 600))
        rec["timestamp"][start:end] -= back
        return start, end, 0.0
    if kind == "length_mismatch":
        key = ("heart_rate", "altitude", "timestamp", "latitude")[int(rng.integers(0, 4))]
        keep = n - int(rng.integers(1, 51))
        if key == "latitude":  # both GPS arrays cut together
            rec["longitude"] = rec["longitude"][:keep]
        rec[key] = rec[key][:keep]
        return keep, n, 0.0
    if kind == "altitude_unrealistic":
        start, end = _segment(rng, n, 10, 100)
        if rng.random() < 0.5:
            rec["altitude"][start:end] = rng.uniform(6500, 9500) + rng.normal(0, 5, end - start)
        else:
            rec["altitude"][start:end] = rng.uniform(-1500, -600) + rng.normal(0, 5, end - start)
        return start, end, 0.0
    raise ValueError(f"unknown fault {kind!r}")


def corrupt_line(rng: np.random.Generator, line: bytes) -> bytes:
    """Truncate the line, or overwrite a span with binary garbage (never a newline)."""
    if rng.random() < 0.6:
        return line[: int(rng.integers(max(len(line) // 20, 1), len(line) - 1))]
    size = int(rng.integers(20, 400))
    start = int(rng.integers(0, max(len(line) - size, 1)))
    garbage = rng.integers(0, 256, size, dtype=np.uint8)
    garbage[np.isin(garbage, (10, 13))] = 0xFF
    garbage[0] = 0xFF  # never valid UTF-8, so the line can never parse
    return line[:start] + garbage.tobytes() + line[start + size :]
