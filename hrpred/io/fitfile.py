"""FIT reader (fitdecode): per-point columns for `hrpred.io.activity.finish`.

A FIT file damaged part-way (truncated upload, a corrupt record) keeps the records decoded
before the damage, with a warning naming the byte, as the watches' own tools do; whatever
fitdecode raises on the damage is caught here, because a corrupt file can make it fail in
many ways (FitParseError, KeyError on an unknown base type, TypeError, struct.error...).
"""

from __future__ import annotations

import io
import math
import warnings as _warnings
from datetime import datetime
from typing import Any

from hrpred.io.activity import (
    SEMICIRCLE_DEG,
    ActivityError,
    Columns,
    check_points,
    empty_columns,
    one_line,
    to_float,
    unix,
)
from hrpred.io.sport import file_sport, fit_sport

SPORT_MESSAGES = ("sport", "session")  # FIT messages that name the activity's sport
ACTIVITY_TYPE = "activity"  # the file_id type of a recorded activity


def _value(frame: Any, *names: str) -> Any:
    for name in names:
        if frame.has_field(name):
            value = frame.get_value(name, fallback=None)
            if value is not None:
                return value
    return None


def _append_record(cols: dict[str, list[float]], frame: Any) -> None:
    ts = _value(frame, "timestamp")
    row = {
        "timestamp": unix(ts) if isinstance(ts, datetime) else math.nan,
        "latitude": to_float(_value(frame, "position_lat")) * SEMICIRCLE_DEG,
        "longitude": to_float(_value(frame, "position_long")) * SEMICIRCLE_DEG,
        "altitude": to_float(_value(frame, "enhanced_altitude", "altitude")),
        "heart_rate": to_float(_value(frame, "heart_rate")),
        "speed": to_float(_value(frame, "enhanced_speed", "speed")) * 3.6,  # m/s -> km/h
        "distance": to_float(_value(frame, "distance")),
    }
    for k, v in row.items():  # all or nothing: the channels stay aligned
        cols[k].append(v)


def check_file_type(kind: object) -> None:
    """ActivityError for a FIT file whose file_id says it is not an activity (a watch's
    monitoring, sleep, settings or course file: most of a Garmin export); an unknown type
    (a number) is read as an activity."""
    if isinstance(kind, str) and kind != ACTIVITY_TYPE:
        raise ActivityError(f"a FIT {kind} file, not an activity (a recorded run)")


def fit_file_type(head: bytes) -> str | None:
    """The file_id type of a FIT file from its first bytes (`activity`, `monitoring_b`,
    `sleep`...), None when they do not say (not a FIT file, no file_id first)."""
    import fitdecode

    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore")
            reader = fitdecode.FitReader(
                io.BytesIO(head),
                check_crc=fitdecode.CrcCheck.DISABLED,
                error_handling=fitdecode.ErrorHandling.IGNORE,
            )
            for frame in reader:
                if isinstance(frame, fitdecode.FitDataMessage):
                    kind = _value(frame, "type") if frame.name == "file_id" else None
                    return kind if isinstance(kind, str) else None
    except Exception:  # noqa: BLE001 - the first bytes of a damaged or cut file: no type
        return None
    return None


def read_fit(data: bytes, warns: list[str]) -> Columns:
    import fitdecode

    cols = empty_columns()
    sports: list[str | None] = []  # each sport/session message's sport
    reader = None
    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore")  # fitdecode warns on odd definitions
            reader = fitdecode.FitReader(
                io.BytesIO(data),
                check_crc=fitdecode.CrcCheck.WARN,
                error_handling=fitdecode.ErrorHandling.WARN,
            )
            # no `with reader`: closing it resets the offset the warning names
            for frame in reader:
                if not isinstance(frame, fitdecode.FitDataMessage):
                    continue
                if frame.name == "file_id":
                    check_file_type(_value(frame, "type"))
                if frame.name in SPORT_MESSAGES:
                    sports.append(fit_sport(_value(frame, "sport"), _value(frame, "sub_sport")))
                if frame.name == "record":
                    check_points(len(cols["timestamp"]) + 1)
                    _append_record(cols, frame)
    except ActivityError:
        raise
    except fitdecode.FitHeaderError as exc:
        if not cols["timestamp"]:
            raise ActivityError(f"not a FIT file ({one_line(exc)})") from None
        _damaged(cols, reader, exc, warns)
    except Exception as exc:  # noqa: BLE001 - any decoder failure on a damaged file
        _damaged(cols, reader, exc, warns)
    finally:
        if reader is not None:
            reader.close()
    if not cols["timestamp"]:
        raise ActivityError("FIT file has no record messages (is it an activity file?)")
    return Columns(cols, file_sport(sports))


def _damaged(cols: dict[str, list[float]], reader: Any, exc: Exception, warns: list[str]) -> None:
    """Keep the records before the damage (ActivityError if fewer than 2), with a warning."""
    where = getattr(reader, "_chunk_offset", None)
    at = f" at byte {where}" if isinstance(where, int) else ""
    text = one_line(exc)
    why = type(exc).__name__ + ("" if text == type(exc).__name__ else f": {text}")
    n = len(cols["timestamp"])
    if n < 2:
        raise ActivityError(f"corrupt or truncated FIT record{at} ({why})") from None
    warns.append(f"FIT file truncated or corrupt{at} after {n} records ({why}): using those")
