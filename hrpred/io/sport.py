"""The sport an activity file says it is, and the check that it is a run.

hrpred predicts running HR (the model learned it from runs only), so a file that says it is a
ride, a swim or a walk gets a one-line error naming its sport (`a cycling activity: hrpred
predicts running HR`) instead of whatever its speeds would make of it (a ride's 40 km/h look
like GPS jumps to the running speed rules). Where a file says its sport:
- FIT: the `sport` message and each `session` message's `sport` (with `sub_sport` when the
  sport itself is generic: `fitness_equipment` + `indoor_rowing` is rowing);
- TCX: `<Activity Sport="Running|Biking|Other">`;
- GPX: each track's `<type>` (free text: `running`, `Run`, `cycling`, `Ride`...).

`normalize_sport` maps those names to one word (`running`, `cycling`, ...) or None when the
file says nothing usable (`generic`, `other`, `transition`, a number, unknown text: predicted
as a run, as before). Several sports in one file (a triathlon) are `multisport`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from hrpred.io.activity import Activity, ActivityError

RUNNING = "running"
MULTISPORT = "multisport"
# file names of sports (lower case, spaces and dashes as "_") -> the sport
_ALIASES = {
    RUNNING: (
        "run", "running", "trail_running", "trail_run", "street_running", "track_running",
        "treadmill", "treadmill_running", "indoor_running", "virtual_run", "virtualrun",
        "jogging", "ultra_run", "ultra_running", "road_running",
    ),
    "cycling": (
        "cycling", "biking", "bike", "ride", "bicycle", "road_cycling", "road_biking",
        "mountain_biking", "mountain_bike", "mtb", "mountainbikeride", "gravel_cycling",
        "gravel_ride", "gravelride", "cyclocross", "indoor_cycling", "spin", "virtual_ride",
        "virtualride", "e_bike", "ebike", "e_biking", "e_bike_ride", "ebikeride",
        "e_mountain_bike_ride", "emountainbikeride", "handcycle", "velomobile",
    ),
    "swimming": (
        "swimming", "swim", "lap_swimming", "open_water", "open_water_swimming", "pool_swim",
    ),
    "walking": ("walking", "walk", "speed_walking", "nordic_walking", "indoor_walking"),
    "hiking": ("hiking", "hike", "mountaineering", "snowshoeing", "snowshoe"),
    "rowing": ("rowing", "row", "indoor_rowing", "canoeing", "kayaking", "paddling",
               "stand_up_paddleboarding", "sup"),
    "skiing": ("skiing", "alpine_skiing", "cross_country_skiing", "backcountry_skiing",
               "nordic_skiing", "alpineski", "nordicski", "backcountryski", "snowboarding",
               "snowboard", "ski"),
    "skating": ("skating", "inline_skating", "inlineskate", "ice_skating", "iceskate"),
    "elliptical": ("elliptical",),
    "driving": ("driving", "motorcycling"),
}  # fmt: skip
_SPORTS = {alias: sport for sport, aliases in _ALIASES.items() for alias in aliases}
# said by files that do not know (or, in a multisport file, between legs): no sport
_UNKNOWN = {"", "generic", "other", "all", "none", "training", "transition", "fitness_equipment",
            "multisport", "invalid"}  # fmt: skip
_WORD = re.compile(r"[^a-z0-9]+")
MAX_SPORT_CHARS = 40  # longer free text is not a sport's name


def normalize_sport(name: object) -> str | None:
    """The sport a file's name for it means (`Biking` -> `cycling`), None when it says
    nothing usable (generic, other, a number); unknown text is kept as one lower-case word."""
    if name is None or isinstance(name, bool):
        return None
    text = _WORD.sub("_", str(name).strip().lower()).strip("_")
    if text in _SPORTS:
        return _SPORTS[text]
    if text in _UNKNOWN or not text or len(text) > MAX_SPORT_CHARS or text.isdigit():
        return None
    return text


def file_sport(names: Iterable[object]) -> str | None:
    """The sport of a file that names `names` (in its sport/session messages, activities or
    tracks): the one sport they name, `multisport` for several, None for none."""
    found = {s for s in (normalize_sport(n) for n in names) if s is not None}
    if len(found) > 1:
        return MULTISPORT
    return next(iter(found), None)


def fit_sport(sport: object, sub_sport: object) -> str | None:
    """The sport of a FIT sport/session message: `sport`, or `sub_sport` when the sport is
    generic (`fitness_equipment` + `treadmill` is a run, + `indoor_rowing` rowing)."""
    return normalize_sport(sport) or normalize_sport(sub_sport)


def not_running(sport: str | None) -> str | None:
    """Why an activity of `sport` cannot be predicted (None: a run, or not known)."""
    if sport is None or sport == RUNNING or (sport not in _ALIASES and sport != MULTISPORT):
        return None
    return f"a {sport} activity: hrpred predicts running HR"


def require_running(activity: Activity) -> None:
    """ActivityError (one line naming the file) when the activity is known not to be a run."""
    why = not_running(activity.sport)
    if why is not None:
        raise ActivityError(f"{activity.source}: {why}" if activity.source else why)
