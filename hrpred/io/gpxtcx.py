"""GPX and TCX readers (XML): per-point columns for `hrpred.io.activity.finish`."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

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
)
from hrpred.io.sport import file_sport

_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")


def xml_text(data: bytes) -> str:
    """The document as text without its declaration (the bytes are decoded already)."""
    text, _ = decode_text(data)
    return _XML_DECL.sub("", text, count=1)


def _children(el: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in el if local(c.tag) == name]


def _gpx_point(pt: ET.Element, cols: dict[str, list[float]]) -> None:
    """One <trkpt>: position, elevation, time, and HR/speed from its extensions (Garmin's
    TrackPointExtension: v2 speed in m/s) or GPX 1.0's <speed> (m/s)."""
    ele = t = math.nan
    hr = spd = spd10 = math.nan
    for child in pt:
        name = local(child.tag)
        if name == "ele":
            ele = to_float(child.text)
        elif name == "time":
            t = parse_iso(child.text)
        elif name == "speed":
            spd10 = to_float(child.text) * 3.6
        elif name == "extensions":
            for el in child.iter():
                tag = local(el.tag).lower()
                if tag in ("hr", "heartrate", "heart_rate"):
                    hr = to_float(el.text)
                elif tag == "speed":
                    spd = to_float(el.text) * 3.6
    cols["timestamp"].append(t)
    cols["latitude"].append(to_float(pt.get("lat")))
    cols["longitude"].append(to_float(pt.get("lon")))
    cols["altitude"].append(ele)
    cols["heart_rate"].append(hr)
    cols["speed"].append(spd10 if math.isnan(spd) else spd)
    cols["distance"].append(math.nan)


def read_gpx(data: bytes, warns: list[str]) -> Columns:
    """A GPX recording's track points (every <trk>'s <trkseg>s, in file order) and the sport
    its tracks' <type> say. ElementTree directly: gpxpy builds an object per field and took
    ~5x longer, which a whole history of files pays (issue 29)."""
    try:
        root = ET.fromstring(xml_text(data))
    except ET.ParseError as exc:
        raise ActivityError(f"not a valid GPX file (XML error: {one_line(exc)})") from None
    if local(root.tag) != "gpx":
        raise ActivityError(f"not a valid GPX file (root element <{local(root.tag)}>)")
    tracks = _children(root, "trk")
    segments = [seg for trk in tracks for seg in _children(trk, "trkseg")]
    points = [pt for seg in segments for pt in _children(seg, "trkpt")]
    check_points(len(points))
    cols = empty_columns()
    for pt in points:
        _gpx_point(pt, cols)
    if not cols["timestamp"]:
        if _children(root, "rte") or _children(root, "wpt"):
            raise ActivityError("GPX has a route or waypoints but no recorded track (no times)")
        raise ActivityError("GPX has no track points")
    sports = [(c.text or "").strip() for trk in tracks for c in _children(trk, "type")]
    return Columns(cols, file_sport(sports))


def read_tcx(data: bytes, warns: list[str]) -> Columns:
    try:
        root = ET.fromstring(xml_text(data))
    except ET.ParseError as exc:
        raise ActivityError(f"not a valid TCX file (XML error: {one_line(exc)})") from None
    if local(root.tag) != "TrainingCenterDatabase":
        raise ActivityError(f"not a TCX file (root element <{local(root.tag)}>)")
    cols = empty_columns()
    sports: list[str | None] = []  # each <Activity Sport="...">
    for el in root.iter():
        tag = local(el.tag)
        if tag == "Activity":
            sports.append(el.get("Sport"))
        if tag != "Trackpoint":
            continue
        check_points(len(cols["timestamp"]) + 1)
        vals = dict.fromkeys(cols, math.nan)
        for child in el.iter():
            name = local(child.tag)
            if name == "Time":
                vals["timestamp"] = parse_iso(child.text)
            elif name == "LatitudeDegrees":
                vals["latitude"] = to_float(child.text)
            elif name == "LongitudeDegrees":
                vals["longitude"] = to_float(child.text)
            elif name == "AltitudeMeters":
                vals["altitude"] = to_float(child.text)
            elif name == "DistanceMeters":
                vals["distance"] = to_float(child.text)
            elif name == "HeartRateBpm":
                vals["heart_rate"] = to_float(next((c.text for c in child), child.text))
            elif name == "Speed":  # ActivityExtension TPX: m/s
                vals["speed"] = to_float(child.text) * 3.6
        for k, v in vals.items():
            cols[k].append(v)
    if not cols["timestamp"]:
        raise ActivityError("TCX has no track points")
    return Columns(cols, file_sport(sports))
