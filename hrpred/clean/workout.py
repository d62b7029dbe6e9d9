"""A raw workout dict coerced to typed numpy arrays, or the reason it cannot be."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

REQUIRED_KEYS = ("id", "userId", "sport", "heart_rate", "timestamp")
GENDERS = ("male", "female")


@dataclass
class Workout:
    """One workout's fields as arrays; optional arrays are None when absent or empty."""

    line: int
    workout_id: int
    user_id: int
    sport: str
    gender: str  # male | female | unknown
    ts: np.ndarray  # int64 Unix seconds
    hr: np.ndarray  # float64 BPM
    alt: np.ndarray  # float64 m (may be empty: rejected later)
    speed: np.ndarray | None  # float64 km/h, native
    lat: np.ndarray | None
    lon: np.ndarray | None


def as_int(value: Any) -> int | None:
    """An integer id (ints, integral floats, digit strings), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def as_array(value: Any) -> np.ndarray | None:
    """1-D float64 array from a list of numbers; None when not coercible.

    An absent value (None) is returned as an empty array so "missing" and "empty"
    are judged alike by the rules.
    """
    if value is None:
        return np.empty(0)
    if isinstance(value, (str, bytes, dict)) or isinstance(value, bool):
        return None
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return None
    if arr.ndim != 1:
        return None
    return arr


def normalise_gender(value: Any) -> str:
    """male | female | unknown (case-insensitive)."""
    if isinstance(value, str):
        v = value.strip().lower()
        if v in GENDERS:
            return v
    return "unknown"


def coerce_workout(line: int, d: dict[str, Any]) -> Workout | str:
    """Typed Workout, or a reject reason (`missing_key:<k>`, `bad_values:<field>`, ...)."""
    for key in REQUIRED_KEYS:
        if key not in d or d[key] is None:
            return f"missing_key:{key}"
    wid = as_int(d["id"])
    if wid is None:
        return "bad_values:id"
    uid = as_int(d["userId"])
    if uid is None:
        return "bad_values:userId"
    if not isinstance(d["sport"], str):
        return "bad_values:sport"
    arrays: dict[str, np.ndarray | None] = {}
    for key in ("timestamp", "heart_rate", "altitude", "speed", "latitude", "longitude"):
        arr = as_array(d.get(key))
        if arr is None:
            return f"bad_values:{key}"
        if (
            arr.size
            and not np.isfinite(arr).all()
            and key
            in (
                "timestamp",
                "heart_rate",
                "altitude",
            )
        ):
            return f"bad_values:{key}"
        arrays[key] = arr
    ts = arrays["timestamp"]
    assert ts is not None
    if ts.size and (np.abs(ts).max() > 1e11 or (ts != np.round(ts)).any()):
        return "bad_values:timestamp"

    def opt(key: str) -> np.ndarray | None:
        arr = arrays[key]
        return arr if arr is not None and arr.size else None

    alt = arrays["altitude"]
    hr = arrays["heart_rate"]
    assert alt is not None and hr is not None
    return Workout(
        line=line,
        workout_id=wid,
        user_id=uid,
        sport=d["sport"],
        gender=normalise_gender(d.get("gender")),
        ts=ts.astype(np.int64),
        hr=hr,
        alt=alt,
        speed=opt("speed"),
        lat=opt("latitude"),
        lon=opt("longitude"),
    )
