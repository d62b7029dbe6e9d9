"""Readers for a runner's own activity files: GPX, TCX, FIT and CSV, each optionally .gz.

`read_activity(path)` returns an `Activity` with every channel as a float array aligned
on strictly increasing timestamps (NaN where a sample lacks a value), or None when the
file has no such channel. Readers repair what can be repaired (unsorted or duplicated
timestamps, 0/255 heart-rate readings, (0, 0) GPS fixes) and say so in `warnings`;
files that cannot give a usable activity raise `ActivityError` with a one-line reason.

Speed channels are left as recorded (NaN where a point has none): `hrpred predict` derives
speed from them with the training data's rules (`hrpred.timeseries.speed_from_recording`).
"""

from __future__ import annotations

import csv
import gzip
import math
import re
import warnings as _warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

SUPPORTED = (".gpx", ".tcx", ".fit", ".csv")  # each also gzip-compressed (.gz), as Strava exports

# Plausibility limits (why: sensors write 0 or 255 for "no reading"). Speed has none here:
# its spikes and cap are the speed rules of params.yaml clean.speed, applied by predict.
HR_MIN_BPM = 25.0  # below: a sensor's "no reading" value, not a heartbeat
HR_MAX_BPM = 250.0  # above: 255 = "invalid" in ANT+/FIT
ALTITUDE_RANGE_M = (-500.0, 9000.0)
SEMICIRCLE_DEG = 180.0 / 2**31  # FIT stores positions in semicircles


class ActivityError(ValueError):
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


def file_kind(path: str | Path) -> str:
    """The reader a path needs: gpx, tcx, fit or csv (by extension, `.gz` allowed)."""
    name = Path(path).name.lower().removesuffix(".gz")
    for ext in SUPPORTED:
        if name.endswith(ext):
            return ext[1:]
    suffix = "".join(Path(path).suffixes) or "(none)"
    raise ActivityError(
        f"{Path(path).name}: unsupported file type '{suffix}': "
        "use .gpx, .tcx, .fit or .csv (optionally .gz)"
    )


def _open(path: Path, text: bool = True) -> Any:
    """Open a file for reading, gunzipping `.gz` on the fly."""
    gz = path.name.lower().endswith(".gz")
    if text:
        opener = gzip.open if gz else open
        return opener(path, "rt", encoding="utf-8", errors="replace")
    return gzip.open(path, "rb") if gz else open(path, "rb")


def read_activity(path: str | Path) -> Activity:
    """Read a GPX, TCX, FIT or CSV activity file (optionally gzipped) into an `Activity`."""
    path = Path(path)
    kind = file_kind(path)
    if not path.exists():
        raise ActivityError(f"{path}: file not found")
    if path.is_dir():
        raise ActivityError(f"{path}: is a directory, not an activity file")
    if path.stat().st_size == 0:
        raise ActivityError(f"{path.name}: empty file")
    reader = {
        "gpx": _read_gpx,
        "tcx": _read_tcx,
        "fit": _read_fit,
        "csv": _read_csv,
    }[kind]
    warns: list[str] = []
    try:
        columns, sport = reader(path, warns)
    except ActivityError as exc:
        msg = str(exc)
        raise ActivityError(msg if msg.startswith(path.name) else f"{path.name}: {msg}") from None
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile) as exc:
        raise ActivityError(
            f"{path.name}: cannot read {kind.upper()} file ({_one_line(exc)})"
        ) from None
    activity = _finish(columns, warns, path.name)
    activity.sport = sport
    return activity


# --------------------------------------------------------------------------- helpers


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _local(tag: str) -> str:
    """XML tag without namespace: '{ns}hr' -> 'hr'."""
    return tag.rsplit("}", 1)[-1]


def _float(text: Any) -> float:
    if text is None:
        return math.nan
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _unix(dt: datetime | None) -> float:
    if dt is None:
        return math.nan
    if dt.tzinfo is None:  # GPX/TCX without zone: UTC by the standards
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _parse_iso(text: str | None) -> float:
    if not text:
        return math.nan
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        return _unix(datetime.fromisoformat(text))
    except ValueError:
        return math.nan


def _interp_nans(t: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Fill NaNs by linear interpolation over time (edges hold the nearest value)."""
    ok = np.isfinite(x)
    if ok.all() or not ok.any():
        return x
    out = x.copy()
    out[~ok] = np.interp(t[~ok], t[ok], x[ok])
    return out


def _finish(columns: dict[str, list[float]], warns: list[str], source: str) -> Activity:
    """Align, sort, de-duplicate and sanity-check the channels a reader collected."""
    t = np.asarray(columns.get("timestamp", []), dtype=np.float64)
    if t.size == 0:
        raise ActivityError(f"{source}: no track points found")
    chans = {k: np.asarray(v, dtype=np.float64) for k, v in columns.items() if k != "timestamp"}
    keep = np.isfinite(t)
    if not keep.any():
        raise ActivityError(f"{source}: no timestamps: the file has points but no times")
    if not keep.all():
        warns.append(f"{int((~keep).sum())} points without a time dropped")
    t = t[keep]
    chans = {k: v[keep] for k, v in chans.items()}
    if np.any(np.diff(t) < 0):
        warns.append("timestamps out of order: sorted")
        order = np.argsort(t, kind="stable")
        t = t[order]
        chans = {k: v[order] for k, v in chans.items()}
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
        raise ActivityError(f"{source}: only {t.size} point with a time: nothing to predict")

    act = Activity(timestamp=t, warnings=warns, source=source)

    hr = chans.get("heart_rate")
    if hr is not None and np.isfinite(hr).any():
        bad = np.isfinite(hr) & ((hr < HR_MIN_BPM) | (hr > HR_MAX_BPM))
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
        lo, hi = ALTITUDE_RANGE_M
        bad = np.isfinite(alt) & ((alt < lo) | (alt > hi))
        if bad.any():
            warns.append(f"{int(bad.sum())} altitude values outside {lo:.0f}..{hi:.0f} m ignored")
            alt = np.where(bad, np.nan, alt)
        if np.isfinite(alt).any():
            act.altitude = _interp_nans(t, alt)

    spd = chans.get("speed")
    if spd is not None and np.isfinite(spd).any():
        act.speed = spd  # as recorded: spikes are the speed rules' job (hrpred.timeseries)

    dist = chans.get("distance")
    if dist is not None and np.isfinite(dist).any():
        act.distance = dist

    lat, lon = chans.get("latitude"), chans.get("longitude")
    if lat is not None and lon is not None:
        ok = np.isfinite(lat) & np.isfinite(lon)
        ok &= (np.abs(lat) <= 90) & (np.abs(lon) <= 180) & ~((lat == 0) & (lon == 0))
        if ok.sum() >= 2:
            act.latitude = np.where(ok, lat, np.nan)
            act.longitude = np.where(ok, lon, np.nan)
    return act


# --------------------------------------------------------------------------- GPX


def _read_gpx(path: Path, warns: list[str]) -> tuple[dict[str, list[float]], str | None]:
    import gpxpy
    import gpxpy.gpx

    try:
        with _open(path) as f:
            gpx = gpxpy.parse(f)
    except (gpxpy.gpx.GPXException, ValueError) as exc:
        raise ActivityError(f"not a valid GPX file ({_one_line(exc)})") from None
    cols: dict[str, list[float]] = {
        k: [] for k in ("timestamp", "latitude", "longitude", "altitude", "heart_rate", "speed")
    }
    sport = None
    for track in gpx.tracks:
        sport = sport or (track.type or None)
        for segment in track.segments:
            for p in segment.points:
                cols["timestamp"].append(_unix(p.time))
                cols["latitude"].append(_float(p.latitude))
                cols["longitude"].append(_float(p.longitude))
                cols["altitude"].append(_float(p.elevation))
                hr = spd = math.nan
                for ext in p.extensions:
                    for el in ext.iter():
                        name = _local(el.tag).lower()
                        if name in ("hr", "heartrate", "heart_rate"):
                            hr = _float(el.text)
                        elif name == "speed":  # TrackPointExtension v2: m/s
                            spd = _float(el.text) * 3.6
                if math.isnan(spd) and p.speed is not None:  # GPX 1.0 <speed> (m/s)
                    spd = float(p.speed) * 3.6
                cols["heart_rate"].append(hr)
                cols["speed"].append(spd)
    if not cols["timestamp"]:
        if gpx.routes or gpx.waypoints:
            raise ActivityError("GPX has a route or waypoints but no recorded track (no times)")
        raise ActivityError("GPX has no track points")
    return cols, sport


# --------------------------------------------------------------------------- TCX


def _read_tcx(path: Path, warns: list[str]) -> tuple[dict[str, list[float]], str | None]:
    import xml.etree.ElementTree as ET

    try:
        with _open(path, text=False) as f:
            root = ET.parse(f).getroot()
    except ET.ParseError as exc:
        raise ActivityError(f"not a valid TCX file (XML error: {_one_line(exc)})") from None
    if _local(root.tag) != "TrainingCenterDatabase":
        raise ActivityError(f"not a TCX file (root element <{_local(root.tag)}>)")
    cols = _empty_columns()
    sport = None
    for el in root.iter():
        tag = _local(el.tag)
        if tag == "Activity" and sport is None:
            sport = el.get("Sport")
        if tag != "Trackpoint":
            continue
        vals = dict.fromkeys(cols, math.nan)
        for child in el.iter():
            name = _local(child.tag)
            if name == "Time":
                vals["timestamp"] = _parse_iso(child.text)
            elif name == "LatitudeDegrees":
                vals["latitude"] = _float(child.text)
            elif name == "LongitudeDegrees":
                vals["longitude"] = _float(child.text)
            elif name == "AltitudeMeters":
                vals["altitude"] = _float(child.text)
            elif name == "DistanceMeters":
                vals["distance"] = _float(child.text)
            elif name == "HeartRateBpm":
                vals["heart_rate"] = _float(next((c.text for c in child), child.text))
            elif name == "Speed":  # ActivityExtension TPX: m/s
                vals["speed"] = _float(child.text) * 3.6
        for k, v in vals.items():
            cols[k].append(v)
    if not cols["timestamp"]:
        raise ActivityError("TCX has no track points")
    return cols, sport


def _empty_columns() -> dict[str, list[float]]:
    """Per-point channels filled by the TCX and FIT readers (NaN where a point lacks one)."""
    names = ("timestamp", "latitude", "longitude", "altitude", "heart_rate", "speed", "distance")
    return {k: [] for k in names}


# --------------------------------------------------------------------------- FIT


def _read_fit(path: Path, warns: list[str]) -> tuple[dict[str, list[float]], str | None]:
    import fitdecode

    cols = _empty_columns()
    sport = None
    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore")  # fitdecode warns on odd definitions
            with (
                _open(path, text=False) as f,
                fitdecode.FitReader(
                    f,
                    check_crc=fitdecode.CrcCheck.WARN,
                    error_handling=fitdecode.ErrorHandling.WARN,
                ) as reader,
            ):
                for frame in reader:
                    if not isinstance(frame, fitdecode.FitDataMessage):
                        continue
                    if frame.name == "sport" and sport is None:
                        sport = _fit_value(frame, "sport")
                        sport = str(sport) if sport is not None else None
                    if frame.name != "record":
                        continue
                    ts = _fit_value(frame, "timestamp")
                    cols["timestamp"].append(_unix(ts) if isinstance(ts, datetime) else math.nan)
                    lat = _fit_value(frame, "position_lat")
                    lon = _fit_value(frame, "position_long")
                    cols["latitude"].append(_float(lat) * SEMICIRCLE_DEG)
                    cols["longitude"].append(_float(lon) * SEMICIRCLE_DEG)
                    alt = _fit_value(frame, "enhanced_altitude", "altitude")
                    cols["altitude"].append(_float(alt))
                    cols["heart_rate"].append(_float(_fit_value(frame, "heart_rate")))
                    spd = _fit_value(frame, "enhanced_speed", "speed")
                    cols["speed"].append(_float(spd) * 3.6)  # m/s -> km/h
                    cols["distance"].append(_float(_fit_value(frame, "distance")))
    except fitdecode.FitHeaderError as exc:
        raise ActivityError(f"not a FIT file ({_one_line(exc)})") from None
    except (fitdecode.FitError, gzip.BadGzipFile, EOFError, OSError) as exc:
        # Truncated or corrupt: keep what was decoded before the damage.
        if len(cols["timestamp"]) < 2:
            raise ActivityError(f"corrupt or truncated FIT file ({_one_line(exc)})") from None
        n = min(len(v) for v in cols.values())
        cols = {k: v[:n] for k, v in cols.items()}
        warns.append(f"FIT file truncated or corrupt after {n} records: using those")
    if not cols["timestamp"]:
        raise ActivityError("FIT file has no record messages (is it an activity file?)")
    return cols, sport


def _fit_value(frame: Any, *names: str) -> Any:
    for name in names:
        if frame.has_field(name):
            value = frame.get_value(name, fallback=None)
            if value is not None:
                return value
    return None


# --------------------------------------------------------------------------- CSV

# Column names (lower case, units stripped) for each channel, in order of preference.
_CSV_TIME = ("timestamp", "time", "datetime", "date_time", "date", "utc", "time_utc")
_CSV_ELAPSED = ("elapsed", "elapsed_time", "elapsed_s", "time_s", "seconds", "secs", "t", "t_s")
_CSV_SPEED = ("enhanced_speed", "speed", "velocity", "speed_kmh", "speed_ms", "speed_mps")
_CSV_DIST = ("distance", "enhanced_distance", "dist", "distance_m", "distance_km")
_CSV_ALT = ("enhanced_altitude", "altitude", "elevation", "ele", "alt", "altitude_m")
_CSV_HR = ("heart_rate", "heartrate", "hr", "bpm", "heart_rate_bpm", "pulse")
_CSV_LAT = ("latitude", "lat", "position_lat")
_CSV_LON = ("longitude", "lon", "lng", "long", "position_long")


def _norm(name: str) -> tuple[str, str]:
    """('Speed (km/h)') -> ('speed', 'km/h'): canonical name and any unit in brackets."""
    raw = str(name).strip().lower()
    m = re.search(r"[\(\[]([^\)\]]*)[\)\]]", raw)
    unit = m.group(1).strip() if m else ""
    base = re.sub(r"[\(\[][^\)\]]*[\)\]]", "", raw).strip()
    base = re.sub(r"[^a-z0-9]+", "_", base).strip("_")
    return base, unit


def _pick(names: dict[str, str], options: tuple[str, ...]) -> str | None:
    for opt in options:
        if opt in names:
            return names[opt]
    return None


def _read_csv(path: Path, warns: list[str]) -> tuple[dict[str, list[float]], str | None]:
    import pandas as pd

    with _open(path) as f:
        head = f.readline()
    sep = max((",", ";", "\t"), key=head.count)  # the header's most frequent delimiter
    try:
        df = pd.read_csv(
            path,
            sep=sep,
            on_bad_lines="skip",
            encoding_errors="replace",
            float_precision="round_trip",
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, csv.Error) as exc:
        raise ActivityError(f"not a readable CSV file ({_one_line(exc)})") from None
    if df.empty or df.shape[1] < 2:
        raise ActivityError("CSV has no data rows or only one column")
    canon: dict[str, str] = {}
    units: dict[str, str] = {}
    for col in df.columns:
        base, unit = _norm(col)
        canon.setdefault(base, col)
        units.setdefault(col, unit)
    cols: dict[str, list[float]] = {}

    tcol = _pick(canon, _CSV_TIME)
    ecol = _pick(canon, _CSV_ELAPSED)
    if tcol is None and ecol is None:
        raise ActivityError(
            "CSV has no time column (expected one of: timestamp, time, elapsed, seconds); "
            f"found: {', '.join(map(str, df.columns[:12]))}"
        )
    cols["timestamp"] = list(_csv_time(df[tcol] if tcol is not None else df[ecol]))

    def numeric(col: str) -> np.ndarray:
        return pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)

    scol = _pick(canon, _CSV_SPEED)
    if scol is not None:
        cols["speed"] = list(numeric(scol) * _speed_factor(scol, units[scol], numeric(scol), warns))
    dcol = _pick(canon, _CSV_DIST)
    if dcol is not None:
        base, unit = _norm(dcol)
        factor = 1000.0 if ("km" in base or unit == "km") else 1.0
        cols["distance"] = list(numeric(dcol) * factor)
    acol = _pick(canon, _CSV_ALT)
    if acol is not None:
        cols["altitude"] = list(numeric(acol))
    hcol = _pick(canon, _CSV_HR)
    if hcol is not None:
        cols["heart_rate"] = list(numeric(hcol))
    lat, lon = _pick(canon, _CSV_LAT), _pick(canon, _CSV_LON)
    if lat is not None and lon is not None:
        la, lo = numeric(lat), numeric(lon)
        if np.nanmax(np.abs(la), initial=0) > 90 or np.nanmax(np.abs(lo), initial=0) > 180:
            la, lo = la * SEMICIRCLE_DEG, lo * SEMICIRCLE_DEG  # FIT-decoded semicircles
        cols["latitude"], cols["longitude"] = list(la), list(lo)
    if not any(k in cols for k in ("speed", "distance", "latitude")):
        raise ActivityError(
            "CSV has no speed, distance or latitude/longitude column: cannot derive speed; "
            f"found: {', '.join(map(str, df.columns[:12]))}"
        )
    return cols, None


def _csv_time(series: Any) -> np.ndarray:
    """Unix seconds from a time column: epoch s/ms, ISO date-times, h:m:s or seconds."""
    import pandas as pd

    num = pd.to_numeric(series, errors="coerce")
    if num.notna().mean() > 0.9:
        v = num.to_numpy(dtype=np.float64)
        med = np.nanmedian(v)
        if med > 1e11:  # epoch milliseconds
            return v / 1000.0
        return v  # epoch seconds, or seconds since start (both work as a time axis)
    text = series.astype(str)
    if text.str.fullmatch(r"\s*\d+:\d{1,2}(:\d{1,2}(\.\d+)?)?\s*").mean() > 0.9:
        parts = text.str.strip().str.split(":")
        secs = parts.map(lambda p: _hms(p))
        return secs.to_numpy(dtype=np.float64)
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        dt = pd.to_datetime(series, errors="coerce", utc=True, format="mixed")
    out = np.full(len(series), np.nan)
    ok = dt.notna().to_numpy()
    out[ok] = (dt[ok] - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    return out


def _hms(parts: list[str]) -> float:
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        return math.nan
    total = 0.0
    for n in nums:
        total = total * 60 + n
    return total


def _speed_factor(col: str, unit: str, values: np.ndarray, warns: list[str]) -> float:
    """Factor to km/h, from the column's name or unit, else from its typical value."""
    base, _ = _norm(col)
    text = f"{base} {unit}".replace(" ", "")
    if re.search(r"km_?/?h|kmh|kph", text):
        return 1.0
    if re.search(r"m_?/?s|mps|_ms$", text) or base == "enhanced_speed":
        return 3.6  # FIT-decoded speeds are m/s
    if re.search(r"mph", text):
        return 1.609344
    moving = values[np.isfinite(values) & (values > 0.3)]
    median = float(np.median(moving)) if moving.size else 0.0
    # Running: 2-7 m/s or 7-25 km/h; the two ranges barely overlap.
    if median < 7.0:
        warns.append(f"speed column '{col}' has no unit: median {median:.1f} read as m/s")
        return 3.6
    warns.append(f"speed column '{col}' has no unit: median {median:.1f} read as km/h")
    return 1.0
