"""The `Activity` every user-file reader returns, its error, and the checks that make it safe.

Readers (hrpred.io.gpxtcx, fitfile, csvfile) collect per-point columns as lists; `finish`
turns them into aligned arrays after the plausibility limits of `hrpred.io.limits`: at most
MAX_POINTS points, timestamps after 2000-01-01 and not in the future (for absolute times),
few enough steps back in time to sort, a recording no longer than MAX_DURATION_S, and
physical ranges for heart rate, speed, altitude, distance and positions (values outside are
masked, counted and reported in `warnings`). Anything sized from the recording later (the
prediction grid, features, the model's input) is sized from this checked duration.
"""

from __future__ import annotations

import codecs
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from hrpred.errors import HrpredError
from hrpred.io.limits import (
    ALTITUDE_RANGE_M,
    DISTANCE_RANGE_M,
    FUTURE_SLACK_S,
    MAX_BACKWARD_FRACTION,
    MAX_DURATION_S,
    MAX_POINTS,
    MIN_TIMESTAMP_S,
    SPEED_RANGE_KMH,
)

# Plausibility limits (why: sensors write 0 or 255 for "no reading").
HR_MIN_BPM = 25.0  # below: a sensor's "no reading" value, not a heartbeat
HR_MAX_BPM = 250.0  # above: 255 = "invalid" in ANT+/FIT
SEMICIRCLE_DEG = 180.0 / 2**31  # FIT stores positions in semicircles
CHANNELS = ("timestamp", "latitude", "longitude", "altitude", "heart_rate", "speed", "distance")


class ActivityError(HrpredError, ValueError):
    """A file that cannot give a usable activity; the message is one line."""


@dataclass
class Activity:
    """One recorded activity, channels aligned on `timestamp` (Unix s, strictly increasing).

    Units: speed km/h, altitude m, latitude/longitude degrees, heart_rate BPM, distance m
    (cumulative). A channel is None when the file does not have it; NaN marks samples
    without a value.
    """

    timestamp: np.ndarray
    speed: np.ndarray | None = None
    altitude: np.ndarray | None = None
    latitude: np.ndarray | None = None
    longitude: np.ndarray | None = None
    heart_rate: np.ndarray | None = None
    distance: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)
    source: str = ""
    sport: str | None = None

    def __len__(self) -> int:
        return len(self.timestamp)

    @property
    def duration_s(self) -> float:
        return float(self.timestamp[-1] - self.timestamp[0]) if len(self.timestamp) else 0.0


@dataclass
class Columns:
    """What a reader found: per-point channels (lists of equal length, NaN = no value)."""

    values: dict[str, list[float]]
    sport: str | None = None
    relative_time: bool = False  # times are seconds since the start (a CSV), not Unix s


def empty_columns() -> dict[str, list[float]]:
    """Per-point channels filled by the readers (NaN where a point lacks one)."""
    return {k: [] for k in CHANNELS}


def check_points(n: int) -> None:
    """ActivityError once a reader has collected more than MAX_POINTS points."""
    if n > MAX_POINTS:
        raise ActivityError(
            f"more than {MAX_POINTS:,} points (limit of hrpred.io.limits.MAX_POINTS; "
            "a day at 1 s is 86,400)"
        )


# --------------------------------------------------------------------------- text helpers


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def local(tag: str) -> str:
    """XML tag without namespace: '{ns}hr' -> 'hr'."""
    return str(tag).rsplit("}", 1)[-1]


def to_float(text: Any) -> float:
    if text is None:
        return math.nan
    try:
        return float(text)
    except (TypeError, ValueError, OverflowError):
        return math.nan


def unix(dt: datetime | None) -> float:
    if dt is None:
        return math.nan
    try:
        if dt.tzinfo is None:  # GPX/TCX without zone: UTC by the standards
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    except (ValueError, OverflowError, OSError, TypeError):
        return math.nan


def parse_iso(text: str | None) -> float:
    if not text:
        return math.nan
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        return unix(datetime.fromisoformat(text))
    except ValueError:
        return math.nan


def decode_text(data: bytes) -> tuple[str, str]:
    """Text of a file and the encoding used: a BOM (UTF-8/16/32) wins, then UTF-16 without
    BOM (every other byte NUL), else UTF-8 with undecodable bytes replaced."""
    for bom, enc in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            return data.decode(enc, errors="replace"), enc
    head = data[:4096]
    if len(head) >= 4 and head.count(0) >= len(head) // 3:
        enc = "utf-16-le" if head[1::2].count(0) > head[0::2].count(0) else "utf-16-be"
        return data.decode(enc, errors="replace"), enc
    return data.decode("utf-8", errors="replace"), "utf-8"


# --------------------------------------------------------------------------- finishing


def _interp_nans(t: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Fill NaNs by linear interpolation over time (edges hold the nearest value)."""
    ok = np.isfinite(x)
    if ok.all() or not ok.any():
        return x
    out = x.copy()
    out[~ok] = np.interp(t[~ok], t[ok], x[ok])
    return out


def _iso(ts: float) -> str:
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError):
        return f"{ts:.0f} s"


def mask_range(
    x: np.ndarray, lo: float, hi: float, what: str, warns: list[str]
) -> np.ndarray | None:
    """x with values outside lo..hi (and infinities) as NaN, None when nothing is left."""
    bad = ~np.isnan(x) & ~((x >= lo) & (x <= hi))
    if bad.any():
        warns.append(f"{int(bad.sum())} {what} outside {lo:g}..{hi:g} ignored")
        x = np.where(bad, np.nan, x)
    return x if np.isfinite(x).any() else None


def _checked_times(t: np.ndarray, relative: bool, warns: list[str]) -> np.ndarray:
    """Mask (bool) of the points whose time is plausible; ActivityError when too few are."""
    keep = np.isfinite(t)
    if not keep.any():
        raise ActivityError("no timestamps: the file has points but no times")
    if not keep.all():
        warns.append(f"{int((~keep).sum())} points without a time dropped")
    if relative:
        bad = keep & (t < 0)
        what = "a negative time"
    else:
        latest = time.time() + FUTURE_SLACK_S
        bad = keep & ((t < MIN_TIMESTAMP_S) | (t > latest))
        what = "a time before 2000-01-01 or in the future"
        if bad.sum() * 2 > keep.sum():
            first = float(t[np.flatnonzero(bad)[0]])
            raise ActivityError(
                f"most timestamps are before 2000-01-01 or in the future (first: {_iso(first)}): "
                "the device's clock was not set, or the times are corrupt"
            )
    if bad.any():
        warns.append(f"{int(bad.sum())} points with {what} dropped (corrupt timestamps)")
        keep &= ~bad
    return keep


def _check_duration(t: np.ndarray) -> None:
    """ActivityError when sorted times `t` span more than MAX_DURATION_S."""
    duration = float(t[-1] - t[0])
    if duration <= MAX_DURATION_S:
        return
    steps = np.diff(t)
    k = int(np.argmax(steps))
    raise ActivityError(
        f"recording spans {duration / 86400:.1f} days, more than the "
        f"{MAX_DURATION_S / 3600:.0f} h limit (hrpred.io.limits.MAX_DURATION_S); largest gap "
        f"{steps[k] / 3600:.1f} h after point {k + 1}: a corrupt timestamp, or several recordings "
        "in one file?"
    )


def finish(found: Columns, warns: list[str], source: str) -> Activity:
    """Check, align, sort and de-duplicate the channels a reader collected."""
    columns = found.values
    n = len(columns.get("timestamp", []))
    if n == 0:
        raise ActivityError("no track points found")
    check_points(n)
    t = np.asarray(columns["timestamp"], dtype=np.float64)
    chans = {
        k: np.asarray(v, dtype=np.float64)
        for k, v in columns.items()
        if k != "timestamp" and len(v) == n
    }
    keep = _checked_times(t, found.relative_time, warns)
    t = t[keep]
    chans = {k: v[keep] for k, v in chans.items()}
    back = int(np.sum(np.diff(t) < 0))
    if back:
        if back > MAX_BACKWARD_FRACTION * max(t.size - 1, 1):
            raise ActivityError(
                f"time goes backwards at {back} of {t.size} points (more than "
                f"{100 * MAX_BACKWARD_FRACTION:.0f}%): rejected, not one recording in time order"
            )
        warns.append(f"timestamps out of order at {back} points: sorted")
        order = np.argsort(t, kind="stable")
        t = t[order]
        chans = {k: v[order] for k, v in chans.items()}
    if t.size:
        _check_duration(t)
    dup = np.concatenate([[False], np.diff(t) == 0])
    if dup.any():
        # Repeated times: keep the first sample, but take any value it lacks from the repeats.
        first = np.flatnonzero(~dup)
        group = np.cumsum(~dup) - 1
        for k, v in chans.items():
            merged = v[first].copy()
            for i in np.flatnonzero(dup & np.isfinite(v)):
                if not np.isfinite(merged[group[i]]):
                    merged[group[i]] = v[i]
            chans[k] = merged
        t = t[first]
        warns.append(f"{int(dup.sum())} points with a repeated time merged")
    if t.size < 2:
        raise ActivityError(f"only {t.size} point with a time: nothing to predict")
    return _channels(Activity(timestamp=t, warnings=warns, source=source), chans)


def _channels(act: Activity, chans: dict[str, np.ndarray]) -> Activity:
    """Channels onto `act`, with values outside physical ranges masked and reported."""
    warns, t = act.warnings, act.timestamp
    hr = chans.get("heart_rate")
    if hr is not None and np.isfinite(hr).any():
        bad = ~np.isnan(hr) & ~((hr >= HR_MIN_BPM) & (hr <= HR_MAX_BPM))
        if bad.any():
            warns.append(
                f"{int(bad.sum())} heart-rate readings outside {HR_MIN_BPM:.0f}-{HR_MAX_BPM:.0f} BPM "
                "(0/255 = no reading) ignored"
            )
            hr = np.where(bad, np.nan, hr)
        act.heart_rate = hr if np.isfinite(hr).any() else None
        if act.heart_rate is None:
            warns.append("no valid heart-rate readings: no comparison with recorded HR")

    alt = chans.get("altitude")
    if alt is not None and np.isfinite(alt).any():
        alt = mask_range(alt, *ALTITUDE_RANGE_M, "altitude values (m)", warns)
        if alt is not None:
            act.altitude = _interp_nans(t, alt)

    spd = chans.get("speed")
    if spd is not None and np.isfinite(spd).any():
        # as recorded, but physically possible: spikes are the speed rules' job (timeseries)
        act.speed = mask_range(spd, *SPEED_RANGE_KMH, "speed values (km/h)", warns)

    dist = chans.get("distance")
    if dist is not None and np.isfinite(dist).any():
        act.distance = mask_range(dist, *DISTANCE_RANGE_M, "distance values (m)", warns)

    lat, lon = chans.get("latitude"), chans.get("longitude")
    if lat is not None and lon is not None:
        ok = np.isfinite(lat) & np.isfinite(lon)
        ok &= (np.abs(lat) <= 90) & (np.abs(lon) <= 180) & ~((lat == 0) & (lon == 0))
        if ok.sum() >= 2:
            act.latitude = np.where(ok, lat, np.nan)
            act.longitude = np.where(ok, lon, np.nan)
    return act
