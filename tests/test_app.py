"""Demo app without a browser: page layout, the prediction handler, samples, main()."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hrpred.serve import app, demo_samples
from tests.app_helpers import make_tiny_bundle, write_gpx_fixture

predict = pytest.importorskip(
    "hrpred.serve.predict", reason="hrpred.serve.predict not available yet"
)
userfiles = pytest.importorskip("hrpred.io.userfiles", reason="hrpred.io.userfiles missing")


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def bundle(bundle_dir: Path):
    return predict.load_bundle(bundle_dir)


@pytest.fixture(scope="module")
def gpx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_gpx_fixture(tmp_path_factory.mktemp("gpx") / "morning run.gpx", minutes=12)


# --------------------------------------------------------------------------- page


def test_build_app_has_every_element_and_wiring(bundle_dir: Path) -> None:
    demo = app.build_app(bundle_dir)
    config = demo.get_config_file()
    by_elem = {
        c["props"].get("elem_id"): c for c in config["components"] if c["props"].get("elem_id")
    }
    assert set(app.IDS.values()) <= set(by_elem), set(app.IDS.values()) - set(by_elem)
    assert by_elem[app.IDS["plot"]]["type"] == "plot"
    assert by_elem[app.IDS["file"]]["type"] == "file"
    assert by_elem[app.IDS["csv"]]["type"] == "file"
    assert by_elem[app.IDS["error"]]["props"]["visible"] is False
    assert config["analytics_enabled"] is False
    assert not any("fonts.googleapis" in str(v) for v in (config.get("stylesheets") or []))

    ids = {c["id"]: c["props"].get("elem_id") for c in config["components"]}
    wiring = {
        (ids[target], event): ([ids[i] for i in dep["inputs"]], [ids[o] for o in dep["outputs"]])
        for dep in config["dependencies"]
        for target, event in dep["targets"]
        if event != "then"
    }
    # each prediction is followed by the clean-up of its CSV (after Gradio copied it)
    then = [dep for dep in config["dependencies"] if dep["targets"][0][1] == "then"]
    assert len(then) == 2 and all(len(dep["inputs"]) == 1 for dep in then)
    ins, outs = wiring[(app.IDS["file"], "change")]
    assert ins[0] == app.IDS["file"]
    assert {app.IDS["gender"], app.IDS["max_hr"], app.IDS["age"], app.IDS["rest_hr"]} <= set(ins)
    for key in ("error", "plot", "avg", "max", "mae", "zones", "csv", "status"):
        assert app.IDS[key] in outs
    assert wiring[(app.IDS["button"], "click")] == (ins, outs)
    assert wiring[(app.IDS["sample"], "change")][1] == [app.IDS["file"]]


def test_build_app_bad_bundle_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        app.main(["--bundle", str(tmp_path / "missing")])
    assert "no model bundle" in str(exc.value) and "\n" not in str(exc.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exc:
        app.main(["--bundle", str(tmp_path / "empty")])
    assert "\n" not in str(exc.value) and "empty" in str(exc.value)


# --------------------------------------------------------------------------- handler


def test_predict_file_shows_what_predict_activity_computes(bundle, gpx: Path, tmp_path) -> None:
    view = app.predict_file(bundle, str(gpx), max_hr=190, workdir=tmp_path)
    ref = predict.predict_activity(bundle, userfiles.read_activity(gpx), max_hr=190.0)
    assert view.error is None
    assert view.avg_hr == pytest.approx(ref.summary["avg_hr"], abs=0)
    assert view.max_hr == pytest.approx(ref.summary["max_hr"], abs=0)
    assert view.mae == pytest.approx(ref.summary["mae"], abs=0)
    assert view.drift_bpm == pytest.approx(ref.summary["drift_bpm"], abs=0)
    # the zone table is the summary's seconds in minutes, in Z1..Z5 order
    minutes = [ref.summary["zones"][z] / 60.0 for z in ("Z1", "Z2", "Z3", "Z4", "Z5")]
    np.testing.assert_allclose(view.zones["minutes"], minutes, atol=0.05 + 1e-9)
    assert view.zones["share_%"].sum() == pytest.approx(100.0, abs=0.3)
    # the download holds the full prediction frame
    csv = pd.read_csv(view.csv_path, float_precision="round_trip")
    assert Path(view.csv_path).name == "morning_run_hr_pred.csv"
    pd.testing.assert_frame_equal(csv, ref.frame.reset_index(drop=True), check_dtype=False)
    # the figure's HR panel draws the predicted (and recorded) curve of that frame
    lines = {ln.get_label(): ln for ln in view.figure.axes[0].get_lines()}
    np.testing.assert_allclose(lines["predicted HR"].get_ydata(), ref.frame["hr_pred"])
    np.testing.assert_allclose(lines["predicted HR"].get_xdata(), ref.frame["t_s"] / 60.0)
    assert "recorded HR" in lines
    # the route panel colours each GPS point by its predicted HR; the fixture is a 1 km loop
    (route,) = [ax for ax in view.figure.axes if ax.get_title().startswith("route")]
    points = route.collections[0]
    np.testing.assert_allclose(points.get_array(), ref.frame["hr_pred"])
    east, north = points.get_offsets().T
    assert np.ptp(east) == pytest.approx(1.0 / math.pi, rel=0.01)  # loop diameter, km
    assert np.ptp(north) == pytest.approx(1.0 / math.pi, rel=0.01)
    assert app.format_number(view.avg_hr) == f"{ref.summary['avg_hr']:.1f}"


def test_predict_file_forwards_the_inputs(bundle, gpx: Path, tmp_path: Path) -> None:
    calls: list[dict] = []

    def spy(bundle_, activity, **kwargs):
        calls.append(kwargs)
        return predict.predict_activity(bundle_, activity, **kwargs)

    app.predict_file(
        bundle, str(gpx), gender="female", max_hr=185, age=40, rest_hr=50,
        workdir=tmp_path, predict_activity=spy,
    )  # fmt: skip
    app.predict_file(
        bundle, str(gpx), gender="unknown", max_hr=0, age=None, rest_hr="",
        workdir=tmp_path, predict_activity=spy,
    )  # fmt: skip
    assert calls[0] == {"gender": "female", "max_hr": 185.0, "rest_hr": 50.0, "age": 40.0}
    assert calls[1] == {"gender": None, "max_hr": None, "rest_hr": None, "age": None}


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.gpx", b""),
        ("garbage.gpx", b"this is not xml\n<gpx"),
        ("notes.txt", b"hello"),
        ("truncated.fit", b"\x0e\x10\x00\x00"),
        ("no_time.csv", b"speed,altitude\n10,100\n11,101\n"),
    ],
)
def test_bad_files_give_one_line_error(bundle, tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    view = app.predict_file(bundle, str(path), workdir=tmp_path)
    assert view.error, view
    assert "\n" not in view.error and "Traceback" not in view.error
    assert view.error.startswith(name) and view.error.count(name) == 1
    assert view.csv_path is None and view.figure is None and view.avg_hr is None


def test_unexpected_failure_is_one_line_not_a_traceback(bundle, gpx: Path, tmp_path) -> None:
    def broken(*_args, **_kwargs):
        raise RuntimeError("boom\n  File 'x.py', line 1")

    view = app.predict_file(bundle, str(gpx), workdir=tmp_path, predict_activity=broken)
    assert view.error == "morning run.gpx: could not predict (RuntimeError: boom)"


def test_no_file_is_not_an_error(bundle) -> None:
    view = app.predict_file(bundle, None)
    assert view.error is None and view.avg_hr is None and "Upload" in view.status


# --------------------------------------------------------------------------- helpers


def test_format_number_and_file_stem() -> None:
    assert app.format_number(None) == "n/a"
    assert app.format_number(151.25) == "151.2"  # binary 151.25 rounds half to even
    assert app.format_number(149.96) == "150.0"
    assert app.file_stem("/x/Run 1.fit.gz") == "Run_1"
    assert app.file_stem("a.GPX") == "a"
    assert app.file_stem("week.tcx") == "week"
    assert app.file_stem(".gpx") == "workout"


def test_zones_table_matches_hand_computation() -> None:
    table = app.zones_table({"Z1": 120.0, "Z2": 600.0, "Z3": 0.0, "Z4": 30.0, "Z5": 450.0})
    assert list(table["zone"]) == ["Z1", "Z2", "Z3", "Z4", "Z5"]
    assert list(table["minutes"]) == [2.0, 10.0, 0.0, 0.5, 7.5]
    assert list(table["share_%"]) == [10.0, 50.0, 0.0, 2.5, 37.5]
    assert app.zones_table(None).empty


# --------------------------------------------------------------------------- samples


def test_samples_are_deterministic_and_physically_consistent() -> None:
    import gpxpy

    for name in demo_samples.sample_names():
        text = demo_samples.to_gpx(demo_samples.generate_sample(name))
        assert text == demo_samples.to_gpx(demo_samples.generate_sample(name))
        w = demo_samples.generate_sample(name)
        track = gpxpy.parse(text)
        points = [p for seg in track.tracks[0].segments for p in seg.points]
        assert len(points) == len(w.timestamp) >= 1800
        assert np.all(np.diff(w.timestamp) == 1)
        # the GPS track covers the distance the speed says (independent: gpxpy's geodesy)
        covered = sum(w.speed_kmh[1:] / 3.6)
        assert track.length_2d() == pytest.approx(covered, rel=0.005)
        assert 60 <= w.heart_rate.min() and w.heart_rate.max() <= 200
        assert math.isclose(points[10].elevation, w.altitude_m[10], abs_tol=0.006)


def test_samples_are_read_back_by_the_gpx_reader(tmp_path: Path) -> None:
    for name in demo_samples.sample_names():
        path = demo_samples.write_sample_gpx(name, tmp_path)
        w = demo_samples.generate_sample(name)
        activity = userfiles.read_activity(path)
        assert len(activity) == len(w.timestamp)
        np.testing.assert_array_equal(activity.heart_rate, w.heart_rate)
        np.testing.assert_allclose(activity.altitude, w.altitude_m, atol=0.006)


def test_out_of_range_input_is_a_one_line_error(bundle, gpx: Path, tmp_path: Path) -> None:
    view = app.predict_file(bundle, str(gpx), max_hr=300, workdir=tmp_path)
    assert view.error is not None and view.error.startswith("morning run.gpx: ")
    assert "300" in view.error and "\n" not in view.error and view.csv_path is None


# --------------------------------------------------------------------------- issue 16: limits


def test_limits_are_set() -> None:
    from hrpred.io.limits import MAX_ACTIVITY_BYTES

    assert app.MAX_UPLOAD == f"{MAX_ACTIVITY_BYTES // (1024 * 1024)}mb"
    assert app.MAX_FILES == 1 and app.CONCURRENCY == 2 and app.QUEUE_MAX == 16
    assert app.DEFAULT_HOST == "127.0.0.1"


def test_hostile_uploads_are_one_line_errors_and_leave_nothing(bundle, gpx, tmp_path) -> None:
    import gzip

    bomb = tmp_path / "bomb.gpx.gz"
    with gzip.open(bomb, "wb") as f:
        for _ in range(70):
            f.write(b" " * (1 << 20))
    typo = tmp_path / "typo.gpx"
    text = gpx.read_text()
    last = text.rindex("<time>") + len("<time>")
    typo.write_text(text[:last] + "2010" + text[last + 4 :])
    work = tmp_path / "work"
    work.mkdir()
    for path, expect in ((bomb, "more than 64 MB once decompressed"), (typo, "spans")):
        view = app.predict_file(bundle, str(path), workdir=work)
        assert view.error.startswith(path.name) and expect in view.error, view.error
        assert "\n" not in view.error and view.csv_path is None
    assert list(work.iterdir()) == []


def test_served_csv_is_deleted_and_nothing_outside_the_workdir(bundle, gpx, tmp_path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    view = app.predict_file(bundle, str(gpx), workdir=work)
    csv_path = Path(view.csv_path)
    assert csv_path.is_file() and work in csv_path.parents
    assert app.discard_output(view.csv_path, work) is True
    assert not csv_path.exists() and list(work.iterdir()) == []
    outside = tmp_path / "keep" / "x.csv"
    outside.parent.mkdir()
    outside.write_text("x")
    assert app.discard_output(str(outside), work) is False and outside.exists()
    assert app.discard_output(str(work / "x.csv"), work) is False and work.exists()
    assert app.discard_output(None, work) is False
