"""Fault injection: the recording problems the clean stage must find.

`apply_fault` edits one workout's recorded arrays in place and returns where the fault is
(step indices, end exclusive) and the sensor offset for offset faults. `corrupt_line`
damages a serialised line (malformed_line). At most one fault per workout.
"""

from __future__ import annotations

import numpy as np

from hrpred.simulate.workouts import EARTH_RADIUS_M

NO_FAULT = (-1, -1, 0.0)


def _segment(rng: np.random.Generator, n: int, lo: int, hi: int) -> tuple[int, int]:
    length = int(rng.integers(lo, hi + 1))
    length = min(length, n - 2)
    start = int(rng.integers(1, n - length))
    return start, start + length


def apply_fault(
    rng: np.random.Generator,
    kind: str,
    rec: dict[str, np.ndarray],
    offset_range: tuple[float, float],
) -> tuple[int, int, float]:
    """Inject fault `kind` into `rec` (timestamp, heart_rate, altitude, latitude, longitude,
    optional speed). Returns (fault_start, fault_end, offset_bpm)."""
    hr = rec["heart_rate"]
    n = hr.size
    if kind in ("none", "malformed_line"):
        return NO_FAULT
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
