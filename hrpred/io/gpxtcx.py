"""GPX and TCX readers (XML): per-point columns for `hrpred.io.activity.finish`."""

from __future__ import annotations

import math
import re
from xml.etree.ElementTree import Element

from hrpred.io.activity import (
    ActivityError,
    Columns,
    check_points,
    decode_text,
    empty_columns,
    local,
    one_line,
    parse_iso,
    to_float,
    unix,
)
from hrpred.io.sport import file_sport

_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")


def xml_text(data: bytes) -> str:
    """The document as text without its declaration (the bytes are decoded already)."""
    text, _ = decode_text(data)
    return _XML_DECL.sub("", text, count=1)


def read_gpx(data: bytes, warns: list[str]) -> Columns:
    import gpxpy
    import gpxpy.gpx

    try:
        gpx = gpxpy.parse(xml_text(data))
    except (gpxpy.gpx.GPXException, ValueError) as exc:
        raise ActivityError(f"not a valid GPX file ({one_line(exc)})") from None
    cols = empty_columns()
    n = sum(len(s.points) for track in gpx.tracks for s in track.segments)
    check_points(n)
    for track in gpx.tracks:
        for segment in track.segments:
            for p in segment.points:
                cols["timestamp"].append(unix(p.time))
                cols["latitude"].append(to_float(p.latitude))
                cols["longitude"].append(to_float(p.longitude))
                cols["altitude"].append(to_float(p.elevation))
                hr = spd = math.nan
                for ext in p.extensions:
                    for el in ext.iter():
                        name = local(el.tag).lower()
                        if name in ("hr", "heartrate", "heart_rate"):
                            hr = to_float(el.text)
                        elif name == "speed":  # TrackPointExtension v2: m/s
                            spd = to_float(el.text) * 3.6
                if math.isnan(spd) and p.speed is not None:  # GPX 1.0 <speed> (m/s)
                    spd = to_float(p.speed) * 3.6
                cols["heart_rate"].append(hr)
                cols["speed"].append(spd)
                cols["distance"].append(math.nan)
    if not cols["timestamp"]:
        if gpx.routes or gpx.waypoints:
            raise ActivityError("GPX has a route or waypoints but no recorded track (no times)")
        raise ActivityError("GPX has no track points")
    return Columns(cols, file_sport(track.type for track in gpx.tracks))


def tcx_root(data: bytes) -> Element:
    """The <TrainingCenterDatabase> element of a TCX document; ActivityError otherwise."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(xml_text(data))
    except ET.ParseError as exc:
        raise ActivityError(f"not a valid TCX file (XML error: {one_line(exc)})") from None
    if local(root.tag) != "TrainingCenterDatabase":
        raise ActivityError(f"not a TCX file (root element <{local(root.tag)}>)")
    return root


_TCX_FIELDS = {  # a Trackpoint's child element -> column
    "Time": "timestamp",
    "LatitudeDegrees": "latitude",
    "LongitudeDegrees": "longitude",
    "AltitudeMeters": "altitude",
    "DistanceMeters": "distance",
    "HeartRateBpm": "heart_rate",
    "Speed": "speed",  # ActivityExtension TPX: m/s, stored in km/h
}


def tcx_trackpoints(top: Element, cols: dict[str, list[float]]) -> None:
    """Append every <Trackpoint> under `top` to `cols` (any of the columns of _TCX_FIELDS,
    timestamp in Unix s, speed in km/h), NaN where a point lacks one; the point cap
    (`check_points`) counts the points already in `cols`."""
    count = len(next(iter(cols.values()), []))
    for el in top.iter():
        if local(el.tag) != "Trackpoint":
            continue
        count += 1
        check_points(count)
        vals = dict.fromkeys(cols, math.nan)
        for child in el.iter():
            key = _TCX_FIELDS.get(local(child.tag))
            if key not in vals:
                continue
            if key == "timestamp":
                vals[key] = parse_iso(child.text)
            elif key == "heart_rate":  # <HeartRateBpm><Value>152</Value></HeartRateBpm>
                vals[key] = to_float(next((c.text for c in child), child.text))
            else:
                vals[key] = to_float(child.text) * (3.6 if key == "speed" else 1.0)
        for k, v in vals.items():
            cols[k].append(v)


def read_tcx(data: bytes, warns: list[str]) -> Columns:
    root = tcx_root(data)
    cols = empty_columns()
    tcx_trackpoints(root, cols)
    if not cols["timestamp"]:
        raise ActivityError("TCX has no track points")
    sports = [el.get("Sport") for el in root.iter() if local(el.tag) == "Activity"]
    return Columns(cols, file_sport(sports))
