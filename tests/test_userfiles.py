"""Readers of runners' own files (hrpred.io.userfiles) on fixtures written by the tests.

Every reader (GPX, TCX, FIT, FIT.gz, CSV) is checked against the simulated workout it was
written from; bad files must give a one-line ActivityError or a warning and a sane result.
"""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import numpy as np
import pytest

from hrpred.io.userfiles import Activity, ActivityError, read_activity
from hrpred.timeseries import SpeedConfig, SpeedResult, speed_from_recording
from tests.predict_fixtures import (
    simulated_workout,
    write_csv,
    write_fit,
    write_gpx,
    write_tcx,
)

REAL = Path(__file__).resolve().parents[2] / "shared" / "samples" / "real"


@pytest.fixture(scope="module")
def workout():
    return simulated_workout(n=240, step_s=5.0, seed=3)


@pytest.fixture(scope="module")
def rules(config) -> SpeedConfig:
    """clean.speed without smoothing, so derived speed compares sample by sample."""
    return dataclasses.replace(config(SpeedConfig, "clean.speed"), smooth_window=0)


def speed_of(act: Activity, rules: SpeedConfig) -> SpeedResult:
    """The speed rules on the file's own points (predict applies them on its grid)."""
    return speed_from_recording(
        act.timestamp, act.speed, act.latitude, act.longitude, rules, act.distance
    )


def _check_channels(act: Activity, w, rules, speed_tol: float, alt_tol: float = 1e-9) -> None:
    np.testing.assert_array_equal(act.timestamp, w.timestamp.astype(float))
    speed = speed_of(act, rules).speed
    # the first sample of a derived speed has no segment before it: compare from the second
    np.testing.assert_allclose(speed[1:], w.speed_kmh[1:], atol=speed_tol)
    np.testing.assert_allclose(act.altitude, w.altitude_m, atol=alt_tol)
    np.testing.assert_array_equal(act.heart_rate, w.heart_rate)


def test_gpx_with_hr_extension_and_gps_speed(tmp_path, workout, rules):
    act = read_activity(write_gpx(tmp_path / "run.gpx", workout))
    assert act.speed is None and act.sport == "running" and act.warnings == []
    assert speed_of(act, rules).source == "gps"
    # positions are written with 8 decimals (~1 mm): GPS speed matches the true speed closely
    _check_channels(act, workout, rules, speed_tol=0.05)
    np.testing.assert_allclose(act.latitude, workout.latitude, atol=1e-8)


def test_gpx_speed_extension_is_native(tmp_path, workout, rules):
    act = read_activity(write_gpx(tmp_path / "run.gpx", workout, speed=True))
    assert speed_of(act, rules).source == "native"
    _check_channels(act, workout, rules, speed_tol=1e-9)


def test_tcx_reader(tmp_path, workout, rules):
    act = read_activity(write_tcx(tmp_path / "run.tcx", workout))
    assert act.sport == "running"  # Sport="Running", normalised (hrpred.io.sport)
    _check_channels(act, workout, rules, speed_tol=1e-9)
    np.testing.assert_allclose(act.distance, workout.distance_m)


def test_tcx_without_speed_uses_distance(tmp_path, workout, rules):
    act = read_activity(write_tcx(tmp_path / "run.tcx", workout, speed=False))
    r = speed_of(act, rules)
    speed, source = r.speed, r.source
    assert source == "distance"
    # reference: the distance written is the cumulative sum of speed * dt
    np.testing.assert_allclose(speed[1:], workout.speed_kmh[1:], atol=1e-6)


@pytest.mark.parametrize("gz", [False, True])
def test_fit_reader(tmp_path, workout, rules, gz):
    path = write_fit(tmp_path / ("run.fit.gz" if gz else "run.fit"), workout, gzip_it=gz)
    act = read_activity(path)
    # FIT stores speed in mm/s and altitude in 1/5 m (offset 500 m)
    _check_channels(act, workout, rules, speed_tol=0.0036 + 1e-9, alt_tol=0.2 + 1e-9)
    np.testing.assert_allclose(act.distance, workout.distance_m, atol=0.01)
    np.testing.assert_allclose(act.latitude, workout.latitude, atol=1e-6)


@pytest.mark.parametrize(
    "columns, source",
    [
        (("timestamp", "speed (km/h)", "altitude", "heart_rate"), "native"),
        (("time", "enhanced_speed", "elevation", "hr"), "native"),
        (("elapsed_s", "speed_kmh", "altitude", "heart_rate"), "native"),
        (("timestamp", "distance", "altitude", "heart_rate"), "distance"),
        (("time", "lat", "lon", "altitude", "heart_rate"), "gps"),
    ],
)
def test_csv_column_variants(tmp_path, workout, rules, columns, source):
    act = read_activity(write_csv(tmp_path / "run.csv", workout, columns=columns))
    r = speed_of(act, rules)
    speed = r.speed
    assert r.source == source
    t0 = 0 if columns[0] == "elapsed_s" else int(workout.timestamp[0])
    np.testing.assert_array_equal(act.timestamp, (workout.timestamp - workout.timestamp[0] + t0))
    tol = {"native": 1e-9, "distance": 1e-6, "gps": 0.05}[source]
    np.testing.assert_allclose(speed[1:], workout.speed_kmh[1:], atol=tol)
    np.testing.assert_array_equal(act.heart_rate, workout.heart_rate)


def test_csv_speed_without_unit_is_guessed_and_said(tmp_path, workout):
    act = read_activity(write_csv(tmp_path / "r.csv", workout, columns=("timestamp", "speed")))
    np.testing.assert_allclose(act.speed, workout.speed_kmh, atol=1e-9)  # m/s detected
    assert any("read as m/s" in w for w in act.warnings)
    assert act.altitude is None and act.heart_rate is None


@pytest.mark.parametrize("kind", ["gpx", "tcx", "csv"])
def test_gzipped_text_formats(tmp_path, workout, rules, kind):
    writer = {"gpx": write_gpx, "tcx": write_tcx, "csv": write_csv}[kind]
    plain = writer(tmp_path / f"run.{kind}", workout)
    packed = tmp_path / f"run.{kind}.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes(), mtime=0))
    a, b = read_activity(plain), read_activity(packed)
    np.testing.assert_array_equal(a.timestamp, b.timestamp)
    np.testing.assert_array_equal(a.heart_rate, b.heart_rate)
    np.testing.assert_array_equal(speed_of(a, rules).speed, speed_of(b, rules).speed)


def test_csv_semicolon_and_epoch_ms(tmp_path, workout):
    lines = ["Time;Speed [km/h];Altitude"]
    for t, v, a in zip(workout.timestamp, workout.speed_kmh, workout.altitude_m, strict=True):
        lines.append(f"{int(t) * 1000};{float(v)!r};{float(a)!r}")
    path = tmp_path / "semi.csv"
    path.write_text("\n".join(lines) + "\n")
    act = read_activity(path)
    np.testing.assert_array_equal(act.timestamp, workout.timestamp.astype(float))
    np.testing.assert_allclose(act.speed, workout.speed_kmh)


# ------------------------------------------------------------------------ bad data


def test_hr_zero_and_255_are_ignored_with_a_warning(tmp_path, workout):
    w = simulated_workout(n=120, step_s=5.0, seed=1)
    w.heart_rate[[3, 10, 11]] = 0
    w.heart_rate[[50]] = 255
    act = read_activity(write_gpx(tmp_path / "hr.gpx", w))
    assert np.isnan(act.heart_rate[[3, 10, 11, 50]]).all()
    assert np.isfinite(np.delete(act.heart_rate, [3, 10, 11, 50])).all()
    assert any("heart-rate readings" in m and "4" in m for m in act.warnings)


def test_gps_spike_is_removed(tmp_path, rules):
    w = simulated_workout(n=200, step_s=5.0, seed=2)
    w.latitude[100] += 0.02  # a 2 km jump for one fix and back
    act = read_activity(write_gpx(tmp_path / "spike.gpx", w))
    r = speed_of(act, rules)
    speed = r.speed
    assert r.source == "gps" and r.n_spikes == 2 and r.raw_max > 1000.0
    assert speed.max() < 25.0
    keep = (np.abs(np.arange(200) - 100) > 1) & (np.arange(200) > 0)
    np.testing.assert_allclose(speed[keep], w.speed_kmh[keep], atol=0.1)


def test_unsorted_and_repeated_times_are_repaired(tmp_path, workout):
    w = simulated_workout(n=60, step_s=5.0, seed=4)
    order = np.arange(60)
    order[[10, 11]] = order[[11, 10]]
    lines = ["timestamp,speed_kmh,heart_rate"]
    for i in order:
        lines.append(f"{int(w.timestamp[i])},{float(w.speed_kmh[i])!r},{int(w.heart_rate[i])}")
    lines.append(lines[-1])  # an exact duplicate row
    path = tmp_path / "order.csv"
    path.write_text("\n".join(lines) + "\n")
    act = read_activity(path)
    assert np.all(np.diff(act.timestamp) > 0) and len(act) == 60
    np.testing.assert_allclose(act.speed, w.speed_kmh)
    assert any("sorted" in m for m in act.warnings)
    assert any("repeated time" in m for m in act.warnings)


def _write(path: Path, data: bytes | str) -> Path:
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "name, content, expect",
    [
        ("empty.gpx", b"", "empty file"),
        ("run.txt", "hello", "unsupported file type"),
        ("run", "hello", "unsupported file type"),
        ("trunc.gpx", '<?xml version="1.0"?><gpx version="1.1"><trk><trkseg><trkpt lat="1"', "GPX"),
        ("html.gpx", "<html><body>not a track</body></html>", "GPX"),
        (
            "notime.gpx",
            '<gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg>'
            '<trkpt lat="1" lon="2"><ele>3</ele></trkpt><trkpt lat="1.1" lon="2"></trkpt>'
            "</trkseg></trk></gpx>",
            "no timestamps",
        ),
        (
            "route.gpx",
            '<gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1"><rte>'
            '<rtept lat="1" lon="2"/></rte></gpx>',
            "no recorded track",
        ),
        ("bad.tcx", "<TrainingCenterDatabase><Activities>", "TCX"),
        ("other.tcx", "<root/>", "not a TCX file"),
        ("text.fit", "this is not a FIT file at all, just text" * 3, "FIT"),
        ("notgz.gpx.gz", "plain text, not gzip", "not a valid GPX file"),
        ("empty.csv", "\n", "CSV"),
        ("header.csv", "timestamp,speed\n", "CSV"),
        ("notime.csv", "speed,altitude\n10,100\n11,101\n", "no time column"),
        ("nospeed.csv", "timestamp,heart_rate\n1,100\n2,101\n", "no speed, distance"),
        ("one.csv", "timestamp,speed\n1,10\n", "only 1 point"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path, name, content, expect):
    path = _write(tmp_path / name, content)
    with pytest.raises(ActivityError) as info:
        read_activity(path)
    msg = str(info.value)
    assert expect in msg and "\n" not in msg and msg.startswith(name)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ActivityError, match="not found"):
        read_activity(tmp_path / "nope.gpx")
    (tmp_path / "dir.gpx").mkdir()
    with pytest.raises(ActivityError, match="directory"):
        read_activity(tmp_path / "dir.gpx")


def test_truncated_fit_keeps_the_records_before_the_damage(tmp_path, workout):
    full = write_fit(tmp_path / "full.fit", workout).read_bytes()
    cut = _write(tmp_path / "cut.fit", full[: len(full) // 2])
    act = read_activity(cut)
    assert 10 < len(act) < len(workout.timestamp)
    np.testing.assert_array_equal(act.timestamp, workout.timestamp[: len(act)].astype(float))
    assert any("truncated" in m for m in act.warnings)
    with pytest.raises(ActivityError, match="FIT"):
        read_activity(_write(tmp_path / "tiny.fit", full[:20]))


def test_truncated_gzip_fit(tmp_path, workout):
    data = gzip.compress(write_fit(tmp_path / "a.fit", workout).read_bytes(), mtime=0)
    act = read_activity(_write(tmp_path / "cut.fit.gz", data[: len(data) * 2 // 3]))
    assert 0 < len(act) < len(workout.timestamp)
    assert any("truncated" in m for m in act.warnings)


def test_a_speed_channel_stuck_at_zero_gives_way_to_gps(workout, rules):
    act = Activity(
        timestamp=workout.timestamp.astype(float),
        speed=np.zeros(len(workout.timestamp)),  # a FIT speed field without a foot pod
        latitude=workout.latitude,
        longitude=workout.longitude,
        source="x.fit",
    )
    r = speed_of(act, rules)
    assert r.source == "gps" and r.still == ["native"]
    np.testing.assert_allclose(r.speed[1:], workout.speed_kmh[1:], atol=0.05)


def test_a_file_without_speed_source_has_none(rules):
    act = Activity(timestamp=np.arange(10.0), heart_rate=np.full(10, 120.0), source="hr.csv")
    r = speed_of(act, rules)
    assert r.speed is None and r.reason == "no_gps"


def test_speed_is_left_as_recorded(tmp_path, workout, rules):
    """Spikes are the speed rules' job (the same in clean and predict), not the reader's."""
    cols = ("timestamp", "speed_kmh", "altitude", "heart_rate")
    w = simulated_workout(n=120, step_s=5.0, seed=5)
    w.speed_kmh[40] = 80.0
    act = read_activity(write_csv(tmp_path / "s.csv", w, columns=cols))
    assert act.speed[40] == 80.0 and act.warnings == []
    r = speed_of(act, rules)
    assert r.n_spikes == 1 and r.speed[40] == pytest.approx((w.speed_kmh[39] + w.speed_kmh[41]) / 2)


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/samples/real not present")
@pytest.mark.parametrize(
    "name, source",
    [
        ("coros-run.fit.gz", "native"),
        ("strava-app-run.fit.gz", "native"),
        ("strava-run.gpx", "gps"),
        ("garmin-run-decoded.csv", "native"),
    ],
)
def test_real_sample_files(name, source, rules):
    act = read_activity(REAL / name)
    r = speed_of(act, rules)
    speed, got = r.speed, r.source
    assert got == source
    assert act.duration_s > 20 * 60
    assert act.heart_rate is not None and 120 < np.nanmean(act.heart_rate) < 200
    moving = speed[speed > 3]
    assert 7 < np.median(moving) < 20  # running speeds in km/h


# --------------------------------------------------------------------------- issue 16: limits


def _gpx_with_last_time(tmp_path: Path, workout, year: str) -> Path:
    path = write_gpx(tmp_path / f"year{year}.gpx", workout)
    text = path.read_text()
    last = text.rindex("<time>") + len("<time>")
    path.write_text(text[:last] + year + text[last + 4 :])
    return path


def test_year_typo_in_the_last_gpx_time_is_dropped_or_a_one_line_error(tmp_path, workout):
    """One typo in the last <time> used to size a 10^8-step grid (15.7 GB on a real file)."""
    future = read_activity(_gpx_with_last_time(tmp_path, workout, "2202"))
    assert len(future) == len(workout.timestamp) - 1
    assert any("in the future dropped" in w for w in future.warnings)
    assert future.duration_s < 2 * 3600
    with pytest.raises(ActivityError, match=r"year2010.gpx: recording spans .* days"):
        read_activity(_gpx_with_last_time(tmp_path, workout, "2010"))
    with pytest.raises(ActivityError, match="more than the 24 h limit"):
        read_activity(_gpx_with_last_time(tmp_path, workout, "2019"))


def test_thirty_day_gap_csv_is_rejected(tmp_path, workout):
    """A 30-day gap used to 'succeed' after seconds and 1.4 GB with a 43,230-minute summary."""
    t = workout.timestamp.astype(float).copy()
    t[len(t) // 2 :] += 30 * 86400
    lines = ["timestamp,speed_kmh"] + [
        f"{x:.0f},{s!r}" for x, s in zip(t, workout.speed_kmh, strict=True)
    ]
    path = tmp_path / "gap.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ActivityError, match=r"gap.csv: recording spans 30.0 days.*largest gap 720"):
        read_activity(path)


def test_too_many_points_and_times_going_backwards(tmp_path, monkeypatch, workout):
    import hrpred.io.activity as activity_mod

    path = write_csv(tmp_path / "run.csv", workout)
    monkeypatch.setattr(activity_mod, "MAX_POINTS", 100)
    with pytest.raises(ActivityError, match="run.csv: more than 100 points"):
        read_activity(path)
    monkeypatch.undo()
    rows = path.read_text().splitlines()
    shuffled = [rows[0]] + rows[1:][::-1]  # every step goes back: not one recording
    path.write_text("\n".join(shuffled) + "\n")
    with pytest.raises(ActivityError, match="time goes backwards at 239 of 240 points"):
        read_activity(path)


def test_physically_impossible_values_are_masked_and_counted(tmp_path, workout):
    path = write_csv(tmp_path / "run.csv", workout, columns=("timestamp", "speed_kmh", "altitude"))
    rows = path.read_text().splitlines()
    rows[5] = rows[5].split(",")[0] + ",-3.0,99999"
    rows[6] = rows[6].split(",")[0] + ",inf,250"
    rows[7] = rows[7].split(",")[0] + ",900,250"
    path.write_text("\n".join(rows) + "\n")
    act = read_activity(path)
    assert np.isnan(act.speed[[4, 5, 6]]).all() and np.isfinite(act.altitude).all()
    assert any("3 speed values (km/h) outside 0..200" in w for w in act.warnings)
    assert any("1 altitude values (m) outside -500..9000" in w for w in act.warnings)


@pytest.mark.parametrize("name", ["bomb.gpx.gz", "bomb.csv.gz", "bomb.fit.gz"])
def test_gzip_bombs_stop_at_the_decompressed_limit(tmp_path, name):
    """A 1 MB .gpx.gz took 36 s and 3.3 GB; a .csv.gz passed 6 GB."""
    import time

    path = tmp_path / name
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(b"timestamp,speed\n" if "csv" in name else b"<gpx>")
        block = b" " * (1 << 20)
        for _ in range(80):  # 80 MB of spaces, ~80 KB compressed
            f.write(block)
    assert path.stat().st_size < 1 << 20
    t0 = time.perf_counter()
    with pytest.raises(ActivityError, match=f"{name}: more than 64 MB once decompressed"):
        read_activity(path)
    assert time.perf_counter() - t0 < 10


def test_trailing_comma_and_extra_fields_never_shift_columns(tmp_path, workout):
    path = write_csv(tmp_path / "trail.csv", workout, columns=("timestamp", "speed_kmh", "hr"))
    rows = path.read_text().splitlines()
    path.write_text("\n".join([rows[0]] + [r + "," for r in rows[1:]]) + "\n")
    act = read_activity(path)  # was: timestamp read as the index, speed as time, hr as speed
    np.testing.assert_array_equal(act.timestamp, workout.timestamp.astype(float))
    np.testing.assert_array_equal(act.speed, workout.speed_kmh)
    np.testing.assert_array_equal(act.heart_rate, workout.heart_rate)
    rows[10] += ",7,8"  # one row with extra values: skipped, said so
    path.write_text("\n".join(rows) + "\n")
    act = read_activity(path)
    assert len(act) == len(workout.timestamp) - 1
    assert any("1 CSV rows with more values than the header's 3 skipped" in w for w in act.warnings)
    np.testing.assert_array_equal(act.speed, np.delete(workout.speed_kmh, 9))


def test_decimal_commas(tmp_path, workout):
    path = write_csv(tmp_path / "semi.csv", workout, columns=("timestamp", "speed_kmh", "hr"))
    rows = path.read_text().splitlines()
    semi = [r.replace(",", ";").replace(".", ",") for r in rows]
    path.write_text("\n".join(semi) + "\n")
    act = read_activity(path)
    np.testing.assert_allclose(act.speed, workout.speed_kmh, rtol=1e-12)
    comma = tmp_path / "comma.csv"  # ',' delimiter and decimal commas: ambiguous
    comma.write_text("\n".join([rows[0]] + [r.replace(".", ",") for r in rows[1:]]) + "\n")
    with pytest.raises(
        ActivityError, match="comma.csv: .*decimal commas with ',' as the delimiter"
    ):
        read_activity(comma)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-8-sig"])
def test_utf16_and_bom_files_are_read(tmp_path, workout, encoding):
    """UTF-16 used to give 'no speed, distance or GPS positions' with a speed column there."""
    gpx = write_gpx(tmp_path / "run.gpx", workout)
    csv_path = write_csv(tmp_path / "run.csv", workout)
    for path in (gpx, csv_path):
        text = path.read_text()
        if path.suffix == ".gpx":
            text = text.replace('encoding="UTF-8"', f'encoding="{encoding.upper()}"')
        path.write_bytes(text.encode(encoding))
        act = read_activity(path)
        np.testing.assert_array_equal(act.timestamp, workout.timestamp.astype(float))
        assert act.heart_rate is not None and len(act) == len(workout.timestamp)


def test_hostile_files_stay_within_time_and_memory(tmp_path, workout):
    """The defects above in one subprocess: peak RSS (torch included) under 1 GB."""
    import subprocess
    import sys

    bad = [
        _gpx_with_last_time(tmp_path, workout, "2010"),
        _gpx_with_last_time(tmp_path, workout, "2202"),
    ]
    code = (
        "import sys\n"
        "from hrpred.io.userfiles import read_activity\n"
        "from tests.procmem import peak_rss_mb\n"
        "for p in sys.argv[1:]:\n"
        "    try: read_activity(p)\n"
        "    except Exception as e: print(type(e).__name__)\n"
        "print(int(peak_rss_mb()))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, *map(str, bad)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )
    lines = res.stdout.split()
    assert res.returncode == 0 and lines[:-1] == ["ActivityError"], res.stderr
    assert int(lines[-1]) < 1024
