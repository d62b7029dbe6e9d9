"""Small Strava- and Garmin-layout exports built in a tmp dir from the simulated runs of
`tests.predict_fixtures` (never committed), and hostile archive members (issue 29)."""

from __future__ import annotations

import gzip
import stat
import zipfile
from pathlib import Path

from tests.predict_fixtures import runner_workout, write_fit, write_gpx, write_tcx

GARMIN_UPLOADS = "DI_CONNECT/DI-Connect-Uploaded-Files"
# activities.csv as Strava writes it: names repeat (two Distance columns: km and m)
STRAVA_HEADER = (
    "Activity ID,Activity Date,Activity Name,Activity Type,Activity Description,"
    "Elapsed Time,Distance,Max Heart Rate,Relative Effort,Commute,Activity Private Note,"
    "Activity Gear,Filename,Athlete Weight,Bike Weight,Elapsed Time,Moving Time,Distance"
)


def _row(aid: int, kind: str, filename: str, date: str = "Oct 7, 2020, 2:43:11 PM") -> str:
    return f'{aid},"{date}",Morning {kind},{kind},,1200,3.1,170,20,false,,,{filename},70,,1200,1150,3100.0'


def run_bytes(tmp: Path, kind: str, seed: int, day: int, level: float = 10.0, **kw) -> bytes:
    """One simulated run (80 points at 8 s, `day` days after the fixtures' start) as a file."""
    w = runner_workout(seed, level, day, n=80)
    path = tmp / f"r{seed}_{day}.{kind}"
    writer = {"gpx": write_gpx, "tcx": write_tcx, "fit": write_fit}[kind]
    return writer(path, w, **kw).read_bytes()


def strava_zip(tmp: Path, name: str = "strava.zip") -> Path:
    """A Strava export: 4 runs (FIT, GPX, TCX gzip'ed; one the duplicate of another), a ride
    (listed as one), a manual entry without a file and a run listed but missing."""
    tmp.mkdir(parents=True, exist_ok=True)
    files = {
        "activities/101.fit.gz": gzip.compress(run_bytes(tmp, "fit", 1, 0), mtime=0),
        "activities/102.gpx.gz": gzip.compress(run_bytes(tmp, "gpx", 2, 1), mtime=0),
        "activities/103.tcx.gz": gzip.compress(run_bytes(tmp, "tcx", 3, 2), mtime=0),
        "activities/104.gpx": run_bytes(tmp, "gpx", 1, 0),  # the same run as 101: duplicate
        "activities/105.gpx.gz": gzip.compress(run_bytes(tmp, "gpx", 5, 3), mtime=0),  # a ride
    }
    rows = [
        STRAVA_HEADER,
        _row(101, "Run", "activities/101.fit.gz"),
        _row(102, "Trail Run", "activities/102.gpx.gz"),
        _row(103, "Run", "activities/103.tcx.gz"),
        _row(104, "Run", "activities/104.gpx"),
        _row(105, "Ride", "activities/105.gpx.gz"),
        _row(106, "Run", ""),  # a manual entry
        _row(107, "Run", "activities/107.fit.gz"),  # listed, not in the export
    ]
    out = tmp / name
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("activities.csv", "\n".join(rows) + "\n")
        z.writestr("profile.csv", "Athlete ID,Email\n1,a@b.c\n")
        for member, data in files.items():
            z.writestr(member, data)
    return out


def monitoring_fit(tmp: Path) -> bytes:
    """A FIT file whose file_id says monitoring_b (most of a Garmin export)."""
    from fit_tool.fit_file_builder import FitFileBuilder
    from fit_tool.profile.messages.file_id_message import FileIdMessage
    from fit_tool.profile.messages.record_message import RecordMessage
    from fit_tool.profile.profile_type import FileType, Manufacturer

    builder = FitFileBuilder(auto_define=True, min_string_size=50)
    msg = FileIdMessage()
    msg.type = FileType.MONITORING_B
    msg.manufacturer = Manufacturer.DEVELOPMENT.value
    msg.product = 0
    msg.time_created = 1_600_000_000_000
    msg.serial_number = 1
    builder.add(msg)
    for i in range(5):  # records too: only the file type tells it from an activity
        r = RecordMessage()
        r.timestamp = 1_600_000_000_000 + i * 1000
        r.heart_rate = 60
        builder.add(r)
    return builder.build().to_bytes()


def garmin_zip(tmp: Path, name: str = "garmin.zip") -> Path:
    """A Garmin export: three runs, a monitoring file and a ride (by its FIT session) in a
    zip nested under DI_CONNECT/DI-Connect-Uploaded-Files/, beside Garmin's JSON."""
    tmp.mkdir(parents=True, exist_ok=True)
    inner = tmp / "UploadedFiles_0-_Part1.zip"
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("me@x.org_1001.fit", run_bytes(tmp, "fit", 11, 10, sport="RUNNING"))
        z.writestr("me@x.org_1002.fit", run_bytes(tmp, "fit", 12, 11, sport="RUNNING"))
        z.writestr("me@x.org_1003.fit", run_bytes(tmp, "fit", 13, 12))  # no sport message
        z.writestr("me@x.org_2001.fit", monitoring_fit(tmp))
        z.writestr("me@x.org_3001.fit", run_bytes(tmp, "fit", 14, 13, sport="CYCLING"))
    out = tmp / name
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.write(inner, f"{GARMIN_UPLOADS}/{inner.name}")
        z.writestr("DI_CONNECT/DI-Connect-User/user_profile.json", '{"userName": "me"}')
    inner.unlink()
    return out


def hostile_zip(tmp: Path, bomb_bytes: int, name: str = "hostile.zip") -> Path:
    """An export with one good run and: a zip-bomb member (`bomb_bytes` of zeros, deflated),
    a gzip bomb, a path outside the archive, a symbolic link, a corrupt FIT, a non-activity
    FIT and an archive nested two deep."""
    tmp.mkdir(parents=True, exist_ok=True)
    deep_inner = tmp / "deep_inner.zip"
    with zipfile.ZipFile(deep_inner, "w") as z:
        z.writestr("x.gpx", run_bytes(tmp, "gpx", 22, 5))
    deep = tmp / "deep.zip"
    with zipfile.ZipFile(deep, "w") as z:
        z.write(deep_inner, "deeper.zip")
    out = tmp / name
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("good.gpx", run_bytes(tmp, "gpx", 21, 4))
        z.writestr("bomb.gpx", b"\0" * bomb_bytes)
        z.writestr("bomb.tcx.gz", gzip.compress(b" " * bomb_bytes, mtime=0))
        z.writestr("../../etc/evil.gpx", run_bytes(tmp, "gpx", 23, 6))
        link = zipfile.ZipInfo("link.fit")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(link, "/etc/passwd")
        z.writestr("corrupt.fit", b"\x0e\x10garbage that is no FIT file" * 10)
        z.writestr("monitor.fit", monitoring_fit(tmp))
        z.write(deep, "nested/deep.zip")
    return out


def physio_workout(seed: int, level: float, day: int, n: int = 200, pace: float = 11.0):
    """A run whose HR follows the pace like a heart (`tests.synthetic_clean.physio_run`: a
    warm-up, lags, noise; nothing the detector flags) at `pace` km/h, `level` BPM above the
    simulated population and `day` days after its start, as a `Workout`."""
    import numpy as np

    from tests.predict_fixtures import Workout
    from tests.synthetic_clean import physio_run

    r = physio_run(np.random.default_rng(seed), n=n, pace_kmh=pace, level_bpm=level)
    t = r["ts"].astype(float)
    dist = np.concatenate([[0.0], np.cumsum(r["speed"][1:] / 3.6 * np.diff(t))])
    return Workout(r["ts"] + day * 86400, r["speed"], r["alt"], r["lat"], r["lon"], r["hr"], dist)
