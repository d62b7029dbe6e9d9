"""The plan's text inputs (the command line's and the app's): clock times and paces, stops
and the start date. Pure Python (the command line's `--help` stays instant); ValueError with
one line for text that is not what it should be."""

from __future__ import annotations

from datetime import UTC, datetime

MAX_STOP_S = 12 * 3600.0  # a longer stop is a typo
MAX_WARMUP_MIN = 120.0  # a longer warm-up (min) is a typo


def clock_seconds(text: str) -> float:
    """'1:45:00' -> 6300, '5:30' -> 330 (h:mm:ss or m:ss), '45' or '4.5' -> minutes."""
    parts = str(text).strip().split(":")
    try:
        if len(parts) == 1:
            value = float(parts[0]) * 60.0
        elif len(parts) > 3 or not all(p.strip().isdigit() and int(p) < 60 for p in parts[1:]):
            raise ValueError(text)
        else:
            value = 0.0
            for p in parts:
                value = value * 60.0 + float(p)
    except ValueError:
        raise ValueError(f"expected h:mm:ss, m:ss or minutes, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"expected h:mm:ss, m:ss or minutes, got {text!r}")
    return value


def parse_stops(text: str) -> list[tuple[float, float]]:
    """'5@1:00,12.5@2:30' -> [(5.0, 60.0), (12.5, 150.0)]: (km, seconds) of each stop."""
    stops = []
    for item in (i.strip() for i in str(text).split(",") if i.strip()):
        km, sep, length = item.partition("@")
        try:
            if not sep:
                raise ValueError(item)
            stop = (float(km), clock_seconds(length))
        except ValueError:
            raise ValueError(f"a stop is KM@M:SS (e.g. 10@1:30), got {item!r}") from None
        if not (0 < stop[0] < float("inf") and 0 < stop[1] <= MAX_STOP_S):
            raise ValueError(f"a stop needs km > 0 and a length of 0-12 h, got {item!r}")
        stops.append(stop)
    return stops


def parse_start(text: str) -> float:
    """An ISO date and time ('2025-06-01T08:00', UTC unless an offset is given) -> Unix s."""
    try:
        when = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected a date and time like 2025-06-01T08:00, got {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
