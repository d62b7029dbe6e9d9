"""Demo app without a browser: page layout, the prediction handler, samples, main()."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hrpred.serve import app, demo_samples, page, presentation
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

    wiring = event_wiring(config)
    # each prediction (3 events) and each plan (the Plan tab's button) is followed by the
    # clean-up of its CSV (after Gradio copied it)
    then = [dep for dep in config["dependencies"] if dep["targets"][0][1] == "then"]
    assert len(then) == 4 and all(len(dep["inputs"]) == 1 for dep in then)
    ins, outs = wiring[(app.IDS["file"], "change")]
    assert ins[0] == app.IDS["file"]
    assert {app.IDS["gender"], app.IDS["max_hr"], app.IDS["age"], app.IDS["rest_hr"]} <= set(ins)
    assert app.IDS["past"] in ins and by_elem[app.IDS["past"]]["props"]["file_count"] == "multiple"
    for key in ("error", "plot", "avg", "max", "mae", "zones", "csv", "status", "personal"):
        assert app.IDS[key] in outs
    assert by_elem[app.IDS["personal"]]["props"]["visible"] is False
    assert wiring[(app.IDS["button"], "click")] == (ins, outs)
    assert wiring[(app.IDS["past"], "change")] == (ins, outs)  # new past runs: predict again
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
    view = page.predict_file(bundle, str(gpx), max_hr=190, workdir=tmp_path)
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
    assert presentation.format_number(view.avg_hr) == f"{ref.summary['avg_hr']:.1f}"


def test_bundle_without_band_says_so(bundle, gpx: Path, tmp_path) -> None:
    view = page.predict_file(bundle, str(gpx), workdir=tmp_path)
    assert view.status.endswith(presentation.NO_BAND_STATUS) and view.status.count("band") == 1
    assert view.avg_band is None and view.max_band is None
    assert list(view.zones.columns) == ["zone", "minutes", "share_%"]
    assert not view.figure.axes[0].collections  # nothing shaded
    assert "hr_p10" not in pd.read_csv(view.csv_path)


def test_band_is_shaded_and_in_the_numbers(bundle_dir, gpx: Path, past: dict, tmp_path) -> None:
    """A bundle with a band: the figure shades it around the headline curve, the band boxes and
    the zone table give the ranges, the side-by-side table the population's and the
    personalised bands."""
    from matplotlib.colors import to_rgb

    from tests.test_predict import with_band

    banded = predict.load_bundle(with_band(bundle_dir, tmp_path / "banded"))
    view = page.predict_file(banded, str(gpx), workdir=tmp_path)
    ref = predict.predict_activity(banded, userfiles.read_activity(gpx))
    band = ref.summary["band"]
    assert view.error is None and presentation.NO_BAND_STATUS not in view.status
    assert view.avg_band == pytest.approx(band["avg_hr"]) and view.max_band == pytest.approx(
        band["max_hr"]
    )
    assert view.avg_band[0] < view.avg_hr < view.avg_band[1]
    assert view.max_band[0] <= view.max_hr <= view.max_band[1]
    assert presentation.format_range(view.avg_band) == "{:.1f}-{:.1f}".format(*band["avg_hr"])
    z = view.zones.set_index("zone")
    assert (z["band_low_min"] <= z["minutes"] + 0.05).all()
    assert (z["minutes"] <= z["band_high_min"] + 0.05).all()
    assert "80% band" in view.zone_basis
    (shade,) = view.figure.axes[0].collections
    assert shade.get_label() == "80% band"
    ys = np.concatenate([p.vertices[:, 1] for p in shade.get_paths()])
    assert ys.min() == pytest.approx(ref.frame["hr_p10"].min())
    assert ys.max() == pytest.approx(ref.frame["hr_p90"].max())
    csv = pd.read_csv(view.csv_path, float_precision="round_trip")
    pd.testing.assert_frame_equal(csv, ref.frame.reset_index(drop=True), check_dtype=False)
    # personalised (a population bundle: + offset and the headline; the headline's band is
    # the population spread around the headline, the bucket of the 3 earlier runs its plan
    # used, factor 1 as this calibration has no runner scale; + offset has none)
    from hrpred.serve.figure import PERSONAL_CURVES
    from tests.test_predict import CAL

    files = [str(f) for f in past["earlier"]]
    mine = page.predict_file(banded, str(gpx), past=files, workdir=tmp_path)
    table = mine.personal.set_index("BPM")
    assert list(table.columns) == ["population", "+ offset", "headline"]
    assert table.loc["avg HR 80% band", "population"] == presentation.format_range(view.avg_band)
    assert table.loc["avg HR 80% band", "+ offset"] == ""
    assert table.loc["avg HR 80% band", "headline"] == presentation.format_range(mine.avg_band)
    shift = np.mean(mine.avg_band) - np.mean(view.avg_band)  # the headline's mean - population's
    assert shift > 5  # this runner sits above the population
    half = np.diff(view.avg_band)[0] / 2 * CAL.average["3-9"] / CAL.average["0"]
    assert mine.avg_band == pytest.approx(
        [np.mean(view.avg_band) + shift - half, np.mean(view.avg_band) + shift + half], abs=1e-6
    )
    assert mine.avg_band[0] < mine.avg_hr < mine.avg_band[1]
    lines = {ln.get_label(): ln for ln in mine.figure.axes[0].get_lines()}
    (shade,) = mine.figure.axes[0].collections  # in the colour of the curve it surrounds
    assert shade.get_facecolor()[0][:3] == pytest.approx(
        to_rgb(lines[PERSONAL_CURVES["hr_personal"][0]].get_color())
    )


def test_predict_file_forwards_the_inputs(bundle, gpx: Path, tmp_path: Path) -> None:
    calls: list[dict] = []

    def spy(bundle_, activity, **kwargs):
        calls.append(kwargs)
        return predict.predict_activity(bundle_, activity, **kwargs)

    page.predict_file(
        bundle, str(gpx), gender="female", max_hr=185, age=40, rest_hr=50,
        workdir=tmp_path, predict_activity=spy,
    )  # fmt: skip
    page.predict_file(
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
    view = page.predict_file(bundle, str(path), workdir=tmp_path)
    assert view.error, view
    assert "\n" not in view.error and "Traceback" not in view.error
    assert view.error.startswith(name) and view.error.count(name) == 1
    assert view.csv_path is None and view.figure is None and view.avg_hr is None


def test_unexpected_failure_is_one_line_not_a_traceback(bundle, gpx: Path, tmp_path) -> None:
    def broken(*_args, **_kwargs):
        raise RuntimeError("boom\n  File 'x.py', line 1")

    view = page.predict_file(bundle, str(gpx), workdir=tmp_path, predict_activity=broken)
    assert view.error == "morning run.gpx: could not predict (RuntimeError: boom)"


def test_no_file_is_not_an_error(bundle) -> None:
    view = page.predict_file(bundle, None)
    assert view.error is None and view.avg_hr is None and "Upload" in view.status


# --------------------------------------------------------------------------- helpers


def test_format_number_and_file_stem() -> None:
    assert presentation.format_number(None) == "n/a"
    assert presentation.format_number(151.25) == "151.2"  # binary 151.25 rounds half to even
    assert presentation.format_number(149.96) == "150.0"
    assert page.file_stem("/x/Run 1.fit.gz") == "Run_1"
    assert page.file_stem("a.GPX") == "a"
    assert page.file_stem("week.tcx") == "week"
    assert page.file_stem(".gpx") == "workout"


def test_zones_table_matches_hand_computation() -> None:
    table = presentation.zones_table({"Z1": 120.0, "Z2": 600.0, "Z3": 0.0, "Z4": 30.0, "Z5": 450.0})
    assert list(table["zone"]) == ["Z1", "Z2", "Z3", "Z4", "Z5"]
    assert list(table["minutes"]) == [2.0, 10.0, 0.0, 0.5, 7.5]
    assert list(table["share_%"]) == [10.0, 50.0, 0.0, 2.5, 37.5]
    assert presentation.zones_table(None).empty


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
    view = page.predict_file(bundle, str(gpx), max_hr=300, workdir=tmp_path)
    assert view.error is not None and view.error.startswith("morning run.gpx: ")
    assert "300" in view.error and "\n" not in view.error and view.csv_path is None


# --------------------------------------------------------------------------- issue 16: limits


def test_limits_are_set() -> None:
    from hrpred.io.limits import MAX_ACTIVITY_BYTES

    assert app.MAX_UPLOAD == f"{MAX_ACTIVITY_BYTES // (1024 * 1024)}mb"
    assert app.MAX_FILES == 1 and app.CONCURRENCY == 2 and app.QUEUE_MAX == 16
    assert page.MAX_PAST_FILES == 20
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
        view = page.predict_file(bundle, str(path), workdir=work)
        assert view.error.startswith(path.name) and expect in view.error, view.error
        assert "\n" not in view.error and view.csv_path is None
    assert list(work.iterdir()) == []


def test_served_csv_is_deleted_and_nothing_outside_the_workdir(bundle, gpx, tmp_path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    view = page.predict_file(bundle, str(gpx), workdir=work)
    csv_path = Path(view.csv_path)
    assert csv_path.is_file() and work in csv_path.parents
    assert page.discard_output(view.csv_path, work) is True
    assert not csv_path.exists() and list(work.iterdir()) == []
    outside = tmp_path / "keep" / "x.csv"
    outside.parent.mkdir()
    outside.write_text("x")
    assert page.discard_output(str(outside), work) is False and outside.exists()
    assert page.discard_output(str(work / "x.csv"), work) is False and work.exists()
    assert page.discard_output(None, work) is False


# --------------------------------------------------------------------------- issue 13: past runs


@pytest.fixture(scope="module")
def past(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Earlier runs of a runner 25 BPM above the population (days -3..-1 before the fixture
    run, one without HR) and a run the day after (must not be used)."""
    from tests.predict_fixtures import runner_workout, write_gpx

    d = tmp_path_factory.mktemp("past")
    earlier = [write_gpx(d / f"day{k}.gpx", runner_workout(40 + k, 25.0, -k)) for k in (3, 2, 1)]
    no_hr = write_gpx(d / "nohr.gpx", runner_workout(50, 25.0, -4), hr=False)
    later = write_gpx(d / "later.gpx", runner_workout(51, 25.0, 1))
    return {"earlier": earlier, "no_hr": no_hr, "later": later}


def test_past_runs_personalise_the_prediction(bundle, gpx: Path, past: dict, tmp_path) -> None:
    from hrpred.serve.profile import build_profile

    files = [str(f) for f in (*past["earlier"], past["no_hr"], past["later"])]
    view = page.predict_file(bundle, str(gpx), past=files, workdir=tmp_path)
    assert view.error is None, view.error
    profile, _ = build_profile(bundle, files)
    ref = predict.predict_activity(bundle, userfiles.read_activity(gpx), profile=profile)
    off, head = ref.summary["offset"], ref.summary["personal"]
    hist = ref.summary["history"]
    assert (hist["earlier_runs"], hist["later_runs_left_out"], hist["used_runs"]) == (3, 1, 3)
    assert "Personalised with 3 earlier run(s)" in view.status
    # the numbers are the headline (personalised) prediction's; the table puts them side by side
    assert ref.summary["headline"] == "personal" and "(headline)" in view.status
    assert view.avg_hr == pytest.approx(head["avg_hr"], abs=0)
    assert view.mae == pytest.approx(head["mae"], abs=0)
    minutes = [head["zones"][z] / 60.0 for z in ("Z1", "Z2", "Z3", "Z4", "Z5")]
    np.testing.assert_allclose(view.zones["minutes"], minutes, atol=0.05 + 1e-9)
    table = view.personal.set_index("BPM")
    # a population bundle: no learned column
    assert list(table.columns) == ["population", "+ offset", "headline"]
    assert table.loc["avg HR", "population"] == round(ref.summary["avg_hr"], 1)
    assert table.loc["avg HR", "+ offset"] == round(off["avg_hr"], 1)
    assert table.loc["avg HR", "headline"] == round(head["avg_hr"], 1)
    assert table.loc["MAE vs recorded", "+ offset"] == round(off["mae"], 1)
    assert table.loc["MAE vs recorded", "headline"] == round(head["mae"], 1)
    assert table.loc["correction", "+ offset"] == round(off["offset_bpm"], 1)
    assert off["offset_bpm"] > 5  # the runner's HR sits above the population's
    # the headline weighs the population and the offset (no learned network) by their errors
    w = head["weights"]
    assert w["learned"] == 0 and w["population"] + w["offset"] == pytest.approx(1, abs=1e-5)
    mix = w["population"] * ref.frame["hr_pred"] + w["offset"] * ref.frame["hr_offset"]
    np.testing.assert_allclose(ref.frame["hr_personal"], mix, atol=1e-3)
    assert any(w.startswith("past runs: nohr.gpx: skipped") for w in view.warnings)
    assert any("did not start before" in w for w in view.warnings)
    # figure: population and personalised curves; CSV: both columns
    lines = {ln.get_label(): ln for ln in view.figure.axes[0].get_lines()}
    np.testing.assert_allclose(lines["population prediction"].get_ydata(), ref.frame["hr_pred"])
    np.testing.assert_allclose(
        lines["personalised HR (+ offset)"].get_ydata(), ref.frame["hr_offset"]
    )
    from hrpred.serve.figure import PERSONAL_CURVES

    np.testing.assert_allclose(
        lines[PERSONAL_CURVES["hr_personal"][0]].get_ydata(), ref.frame["hr_personal"]
    )
    csv = pd.read_csv(view.csv_path, float_precision="round_trip")
    pd.testing.assert_frame_equal(csv, ref.frame.reset_index(drop=True), check_dtype=False)
    # no past runs: no table, as before
    plain = page.predict_file(bundle, str(gpx), past=[], workdir=tmp_path)
    assert plain.personal is None and "Personalised" not in plain.status
    assert plain.avg_hr == pytest.approx(ref.summary["avg_hr"], abs=0)


def test_past_runs_profile_upload_and_errors(bundle, gpx: Path, past: dict, tmp_path) -> None:
    from hrpred.serve.profile import build_profile, save_profile

    files = [str(f) for f in past["earlier"]]
    profile, _ = build_profile(bundle, files)
    me = tmp_path / "me.json"
    save_profile(profile, me)
    from_json = page.predict_file(bundle, str(gpx), past=[str(me)], workdir=tmp_path)
    from_runs = page.predict_file(bundle, str(gpx), past=files, workdir=tmp_path)
    assert from_json.error is None
    pd.testing.assert_frame_equal(from_json.personal, from_runs.personal)
    # a profile of another model, a mix, too many files, no run with HR, a broken profile
    other = predict.load_bundle(make_tiny_bundle(tmp_path / "other", seed=1))
    mine = tmp_path / "other.json"
    save_profile(build_profile(other, files)[0], mine)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    cases = [
        ([str(mine)], "another model"),
        ([str(me), files[0]], "either one profile"),
        (files * 7, "at most 20"),
        ([str(bad)], "unreadable profile"),
    ]
    for uploads, expect in cases:
        view = page.predict_file(bundle, str(gpx), past=uploads, workdir=tmp_path)
        assert view.error is not None and view.error.startswith("past runs: "), view.error
        assert expect in view.error and "\n" not in view.error and view.csv_path is None
    view = page.predict_file(bundle, str(gpx), past=[str(past["no_hr"])], workdir=tmp_path)
    assert view.error is None and view.personal is None
    assert any("no run with heart rate" in w for w in view.warnings)


# --------------------------------------------------------------------------- issue 28: Plan tab


def test_plan_tab_has_every_element_and_wiring(bundle_dir: Path) -> None:
    from hrpred.serve import plan_app

    config = app.build_app(bundle_dir).get_config_file()
    by_elem = {
        c["props"].get("elem_id"): c for c in config["components"] if c["props"].get("elem_id")
    }
    assert set(plan_app.PLAN_IDS.values()) <= set(by_elem)
    assert not set(plan_app.PLAN_IDS.values()) & set(app.IDS.values())  # ids stay unique
    assert by_elem[plan_app.PLAN_IDS["plot"]]["type"] == "plot"
    tabs = [c["props"].get("label") for c in config["components"] if c["type"] == "tabitem"]
    assert tabs == ["Predict", "Plan", "History"]
    wiring = {elem: io for (elem, event), io in event_wiring(config).items() if event == "click"}
    ins, outs = wiring[plan_app.PLAN_IDS["button"]]
    assert ins == [plan_app.PLAN_IDS[k] for k in plan_app.PLAN_REQUEST]
    assert outs[:-1] == [plan_app.PLAN_IDS[k] for k in plan_app.PLAN_OUTPUTS]  # + the CSV state


def test_plan_file_shows_what_plan_route_computes(bundle, tmp_path) -> None:
    from hrpred.serve import plan_page
    from hrpred.serve.planner import plan_route
    from hrpred.serve.route import load_route
    from tests.plan_fixtures import write_sample_route

    route_path = write_sample_route(tmp_path / "hills.gpx")
    request = plan_page.plan_request(pace="5:30", stops="5@1:00", warmup_min=0)
    assert request.pace_s_per_km == 330 and request.warmup_s == 0 and len(request.stops) == 1
    view = plan_page.plan_file(bundle, str(route_path), request=request, max_hr=185,
                               workdir=tmp_path)  # fmt: skip
    assert view.error is None, view.error
    route = load_route(route_path, bundle.step_s, bundle.speed)
    ref = plan_route(bundle, route, request, max_hr=185.0)
    assert view.finish == "56:00" and view.avg_hr == pytest.approx(ref.summary["avg_hr"])
    assert view.max_hr == pytest.approx(ref.summary["max_hr"])
    assert list(view.splits["km"]) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert "max HR 185 (given)" in view.zone_basis and "TRIMP" in view.load
    table = pd.read_csv(view.csv_path)
    assert len(table) == len(ref.run.hr)
    np.testing.assert_allclose(table["hr"], ref.run.hr, atol=5e-4)
    assert view.figure is not None and "finish 56:00" in view.status


def test_plan_errors_are_one_line(bundle, gpx: Path, tmp_path) -> None:
    from hrpred.serve import plan_page

    assert plan_page.plan_file(bundle, None, request=plan_page.plan_request()).error is None
    with pytest.raises(ValueError, match="expected h:mm:ss"):
        plan_page.plan_request(pace="fast")
    with pytest.raises(ValueError, match="warm-up"):
        plan_page.plan_request(warmup_min=500)
    recorded = plan_page.plan_file(
        bundle, str(gpx), request=plan_page.plan_request(pace="5:00"), workdir=tmp_path
    )
    assert recorded.error.startswith("morning run.gpx") and "--replan" in recorded.error
    bad = tmp_path / "bad.gpx"
    bad.write_text("<gpx")
    view = plan_page.plan_file(bundle, str(bad), request=plan_page.plan_request(pace="5:00"))
    assert view.error.startswith("bad.gpx: not a valid GPX") and "\n" not in view.error
    replanned = plan_page.plan_file(
        bundle, str(gpx), request=plan_page.plan_request(finish="20:00", replan=True),
        workdir=tmp_path,
    )  # fmt: skip
    assert replanned.error is None and replanned.finish == "20:00"


# --------------------------------------------------------------------------- issue 29: History tab


def test_history_tab_has_every_element_and_wiring(bundle_dir: Path) -> None:
    from hrpred.serve.history_app import HISTORY_IDS

    config = app.build_app(bundle_dir).get_config_file()
    by_elem = {
        c["props"].get("elem_id"): c for c in config["components"] if c["props"].get("elem_id")
    }
    assert set(HISTORY_IDS.values()) <= set(by_elem)
    assert not set(HISTORY_IDS.values()) & set(app.IDS.values())
    assert by_elem[HISTORY_IDS["files"]]["props"]["file_count"] == "multiple"
    wiring = {elem: io for (elem, event), io in event_wiring(config).items() if event == "click"}
    ins, outs = wiring[HISTORY_IDS["button"]]
    assert ins == [HISTORY_IDS["files"], HISTORY_IDS["gender"]]
    assert outs[:-1] == [HISTORY_IDS[k] for k in
                         ("error", "status", "plot", "table", "warnings", "csv")]  # fmt: skip
    ins, outs = wiring[HISTORY_IDS["check"]]
    assert ins[1] == HISTORY_IDS["run"] and outs == [HISTORY_IDS["verdict"]]


def test_every_tab_shows_errors_and_warnings_the_same_way() -> None:
    """One helper per message kind for the three tabs: the error hidden without one, the
    warnings capped at MAX_WARNINGS_SHOWN with a count of the rest."""
    assert page.error_update(None)["visible"] is False
    shown = page.error_update("run.fit: no speed")
    assert shown["visible"] is True and shown["value"] == "**Error:** run.fit: no speed"
    assert page.warnings_update(())["visible"] is False
    many = [f"warning {k}" for k in range(page.MAX_WARNINGS_SHOWN + 10)]
    lines = page.warnings_update(many)["value"].splitlines()
    assert lines[: page.MAX_WARNINGS_SHOWN] == [f"- {w}" for w in many[: page.MAX_WARNINGS_SHOWN]]
    assert lines[page.MAX_WARNINGS_SHOWN :] == ["- ... and 10 more"]


def event_wiring(config: dict) -> dict[tuple[str, str], tuple[list[str], list[str]]]:
    """A built page's events but `then`: (elem_id, event) -> (input elem_ids, output elem_ids)."""
    ids = {c["id"]: c["props"].get("elem_id") for c in config["components"]}
    return {
        (ids[target], event): ([ids[i] for i in dep["inputs"]], [ids[o] for o in dep["outputs"]])
        for dep in config["dependencies"]
        for target, event in dep["targets"]
        if event != "then"
    }
