"""CSV reader: per-point columns for `hrpred.io.activity.finish`.

Rows are checked against the header before pandas reads them, so columns never shift: a
trailing delimiter (empty extra fields) is dropped, rows with extra values are skipped and
counted. `;`- or tab-separated files with decimal commas are read as such; a `,`-separated
file whose rows have extra values because of decimal commas is rejected saying so. UTF-16
(with or without BOM) and UTF-8 with BOM are decoded (hrpred.io.activity.decode_text).
"""

from __future__ import annotations

import csv
import io
import math
import re
import warnings as _warnings
from typing import Any

import numpy as np

from hrpred.io.activity import (
    SEMICIRCLE_DEG,
    ActivityError,
    Columns,
    check_points,
    decode_text,
    one_line,
)
from hrpred.io.limits import MIN_TIMESTAMP_S

# Column names (lower case, units stripped) for each channel, in order of preference.
_CSV_TIME = ("timestamp", "time", "datetime", "date_time", "date", "utc", "time_utc")
_CSV_ELAPSED = ("elapsed", "elapsed_time", "elapsed_s", "time_s", "seconds", "secs", "t", "t_s")
_CSV_SPEED = ("enhanced_speed", "speed", "velocity", "speed_kmh", "speed_ms", "speed_mps")
_CSV_DIST = ("distance", "enhanced_distance", "dist", "distance_m", "distance_km")
_CSV_ALT = ("enhanced_altitude", "altitude", "elevation", "ele", "alt", "altitude_m")
_CSV_HR = ("heart_rate", "heartrate", "hr", "bpm", "heart_rate_bpm", "pulse")
_CSV_LAT = ("latitude", "lat", "position_lat")
_CSV_LON = ("longitude", "lon", "lng", "long", "position_long")
_DECIMAL_COMMA = re.compile(r"(?<![\d.,])\d+,\d+(?![\d.,])")  # 3,14 alone in a field


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


def _clean_rows(text: str, sep: str, warns: list[str]) -> str:
    """The CSV with every row at the header's width: empty trailing fields dropped, rows with
    extra values skipped (ActivityError when most rows have them)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=sep, lineterminator="\n")
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    header = next(rows, None)
    if not header:
        raise ActivityError("CSV has no header line")
    while header and not header[-1].strip():
        header = header[:-1]  # a trailing delimiter on the header line
    writer.writerow(header)
    width, n_rows, extra = len(header), 0, 0
    for row in rows:
        if not row:
            continue
        n_rows += 1
        check_points(n_rows)
        if len(row) > width:
            if any(v.strip() for v in row[width:]):
                extra += 1
                continue
            row = row[:width]
        writer.writerow(row)
    if extra and extra * 2 > n_rows:
        hint = (
            " (decimal commas with ',' as the delimiter? use ';' or decimal points)"
            if sep == "," and "." not in text.split("\n", 1)[-1][:20000]  # no decimal point
            else ""
        )
        raise ActivityError(
            f"{extra} of {n_rows} CSV rows have more values than the header's {width} columns{hint}"
        )
    if extra:
        warns.append(f"{extra} CSV rows with more values than the header's {width} skipped")
    return out.getvalue()


def read_csv(data: bytes, warns: list[str]) -> Columns:
    import pandas as pd

    text, encoding = decode_text(data)
    if encoding.startswith("utf-16") or encoding == "utf-32":
        warns.append(f"CSV encoded as {encoding.upper()}: decoded")
    head = text.split("\n", 1)[0]
    sep = max((",", ";", "\t"), key=head.count)  # the header's most frequent delimiter
    body = text[len(head) : len(head) + 20000]
    decimal = "," if sep != "," and _DECIMAL_COMMA.search(body) else "."
    try:
        cleaned = _clean_rows(text, sep, warns)
        df = pd.read_csv(
            io.StringIO(cleaned),
            sep=sep,
            decimal=decimal,
            index_col=False,
            on_bad_lines="skip",
            float_precision="round_trip",
        )
    except ActivityError:
        raise
    except csv.Error as exc:
        raise ActivityError(f"not a readable CSV file ({one_line(exc)})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise ActivityError(f"not a readable CSV file ({one_line(exc)})") from None
    if df.empty or df.shape[1] < 2:
        raise ActivityError("CSV has no data rows or only one column")
    return _columns(df, warns)


def _columns(df: Any, warns: list[str]) -> Columns:
    import pandas as pd

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
    times, relative = _csv_time(df[tcol] if tcol is not None else df[ecol])
    cols["timestamp"] = list(times)

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
    return Columns(cols, None, relative_time=relative)


def _csv_time(series: Any) -> tuple[np.ndarray, bool]:
    """Seconds from a time column: epoch s/ms or ISO date-times (Unix s), or h:m:s and plain
    seconds since the start (relative: the second value says which)."""
    import pandas as pd

    num = pd.to_numeric(series, errors="coerce")
    if num.notna().mean() > 0.9:
        v = num.to_numpy(dtype=np.float64)
        med = np.nanmedian(v)
        if med > 1e11:  # epoch milliseconds
            return v / 1000.0, False
        # epoch seconds, or seconds since start (both work as a time axis)
        return v, not med >= MIN_TIMESTAMP_S
    text = series.astype(str)
    if text.str.fullmatch(r"\s*\d+:\d{1,2}(:\d{1,2}(\.\d+)?)?\s*").mean() > 0.9:
        parts = text.str.strip().str.split(":")
        secs = parts.map(lambda p: _hms(p))
        return secs.to_numpy(dtype=np.float64), True
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        dt = pd.to_datetime(series, errors="coerce", utc=True, format="mixed")
    out = np.full(len(series), np.nan)
    ok = dt.notna().to_numpy()
    out[ok] = (dt[ok] - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    return out, False


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
