"""`hrpred plan` (issue 28): routes in, pace plans, the planned run's prediction, the HR cap.

Acceptance: a recorded run turned into a route (its timestamps dropped) and planned at its
own recorded pace profile reproduces `predict_activity` on the original within 1 BPM MAE (on
simulated runs and on ../shared/samples/real when present); with a cap, the headline HR is at
or below it on >= 95% of the steps after the warm-up, and the plan 3% faster everywhere
breaks that. The model is a tiny TRAINED history network (`make_history_bundle`: its HR
follows speed, so a cap can be held and a wrong speed shows in the HR).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from hrpred.bundle.runtime import load_bundle
from hrpred.io.activity import ActivityError
from hrpred.io.routefile import read_route_points
from hrpred.io.userfiles import read_activity
from hrpred.serve import pacing
from hrpred.serve.plan import (
    PacePlan,
    Stop,
    even_effort_for_time,
    predict_plan,
    timing,
)
from hrpred.serve.plan_args import clock_seconds, parse_start, parse_stops
from hrpred.serve.plan_cap import CAP_SHARE, share_under
from hrpred.serve.plan_summary import trimp
from hrpred.serve.planner import PlanRequest, plan_route
from hrpred.serve.predict import predict_activity
from hrpred.serve.profile import build_profile
from hrpred.serve.route import Course, course, load_route
from tests.plan_fixtures import (
    hilly_loop,
    positions,
    route_of,
    with_pause,
    with_standing,
    write_route_gpx,
    write_tcx_course,
)
from tests.predict_fixtures import (
    EARTH_RADIUS_M,
    runner_workout,
    simulated_workout,
    write_fit,
    write_gpx,
)

REAL = Path(__file__).resolve().parents[2] / "shared" / "samples" / "real"
LEVEL = 12.0  # the profile runner's HR above the population's (BPM)


@pytest.fixture(scope="module")
def hist_dir(tmp_path_factory) -> Path:
    from tests.predict_fixtures import make_history_bundle

    return make_history_bundle(tmp_path_factory.mktemp("hist"))


@pytest.fixture(scope="module")
def bundle(hist_dir):
    return load_bundle(hist_dir)


@pytest.fixture(scope="module")
def profile(bundle, tmp_path_factory):
    """A runner 12 BPM above the population, 6 earlier runs (days 0-5 after START)."""
    d = tmp_path_factory.mktemp("past")
    files = [write_gpx(d / f"r{k}.gpx", runner_workout(300 + k, LEVEL, k)) for k in range(6)]
    prof, _ = build_profile(bundle, files)
    return prof


def _headline(pred) -> np.ndarray:
    frame = pred.frame
    col = {"population": "hr_pred", "offset": "hr_offset", "personal": "hr_personal"}
    return frame[col[pred.summary["headline"]]].to_numpy()


def _mae_vs_predict(outcome_run, activity, reference) -> float:
    """MAE (BPM) of the plan's headline against predict's, at the original's points."""
    t = activity.timestamp
    planned = np.interp(t, outcome_run.activity.timestamp, outcome_run.hr)
    return float(np.mean(np.abs(planned - _headline(reference))))


# --------------------------------------------------------------------------- pacing physics


def test_minetti_cost_is_the_papers_polynomial() -> None:
    """Cr(i) written out term by term (Minetti et al. 2002): 3.6 J/kg/m on the flat, the
    minimum near -18% to -20%, and clipped beyond +-45%."""
    for i in (-0.4, -0.2, -0.1, 0.0, 0.05, 0.1, 0.3, 0.45):
        ref = 155.4 * i**5 - 30.4 * i**4 - 43.3 * i**3 + 46.3 * i**2 + 19.5 * i + 3.6
        assert pacing.running_cost(i) == pytest.approx(ref, rel=1e-12)
    grades = np.linspace(-0.45, 0.45, 901)
    assert -0.21 < grades[np.argmin(pacing.running_cost(grades))] < -0.17
    assert pacing.running_cost(0.6) == pacing.running_cost(0.45)


def test_grade_factor_is_equal_power_uphill_and_capped_downhill() -> None:
    f = pacing.grade_speed_factor(np.array([0.0, 0.05, 0.1, 0.2, -0.05, -0.15, -0.45]))
    assert f[0] == 1.0
    assert f[2] == pytest.approx(3.6 / (0.00155400 - 0.00304 - 0.0433 + 0.463 + 1.95 + 3.6))
    assert f[1] > f[2] > f[3]  # slower the steeper the climb
    assert f[4] == f[5] == pacing.DOWNHILL_MAX_FACTOR  # no racing downhill
    assert f[6] < 1.0  # a very steep descent is slow again (the polynomial's own factor)


# --------------------------------------------------------------------------- routes in


def test_gpx_route_distance_and_elevation(tmp_path) -> None:
    """A straight <rte> due north: its length is the radius x the latitude span (radians)."""
    north = np.arange(0.0, 3001.0, 250.0)
    lat, lon = positions(np.zeros_like(north), north)
    path = write_route_gpx(tmp_path / "line.gpx", lat, lon, 100 + north / 100)
    route = load_route(path, 8.0, _speed())
    span = EARTH_RADIUS_M * math.radians(round(lat[-1], 7) - round(lat[0], 7))  # as written
    assert route.length_m == pytest.approx(span, rel=1e-9)
    assert route.recorded is None and route.has_elevation and not route.warnings
    np.testing.assert_allclose(route.altitude_m, 100 + north / 100, atol=0.006)
    c = course(route)
    assert np.allclose(c.grade[5:-5], 0.01, atol=1e-6)  # 1 m per 100 m


def test_track_without_times_and_tcx_course(tmp_path) -> None:
    lat, lon, ele = hilly_loop(2000.0, 20.0)
    trk = load_route(write_route_gpx(tmp_path / "t.gpx", lat, lon, ele, kind="trk"), 8.0, _speed())
    assert trk.recorded is None and trk.length_m == pytest.approx(2000.0, rel=2e-3)
    # a course's own distance wins over the positions (here 10% longer), its times are ignored
    dist = 1.1 * trk.distance_m
    tcx = load_route(write_tcx_course(tmp_path / "c.tcx", lat, lon, ele, dist), 8.0, _speed())
    assert tcx.recorded is None and tcx.length_m == pytest.approx(dist[-1], abs=0.01)


def test_a_recording_is_read_with_its_times(tmp_path) -> None:
    w = simulated_workout(n=200, step_s=4.0, seed=1)
    path = write_gpx(tmp_path / "run.gpx", w)
    assert read_route_points(path) is None
    route = load_route(path, 8.0, _speed())
    assert route.recorded is not None and route.recorded.start_time == float(w.timestamp[0])
    assert route.recorded.arrive_s[-1] == pytest.approx(w.timestamp[-1] - w.timestamp[0], abs=8)


def test_no_elevation_is_flat_and_spikes_are_removed(tmp_path) -> None:
    lat, lon, ele = hilly_loop(3000.0, 5.0)
    flat = load_route(write_route_gpx(tmp_path / "f.gpx", lat, lon), 8.0, _speed())
    assert not flat.has_elevation and (flat.altitude_m == 0).all()
    assert any("no elevation" in w for w in flat.warnings)
    spiky = ele.copy()
    spiky[[100, 101, 300]] += [45.0, 40.0, -30.0]  # GPS glitches 5 m apart: far too steep
    route = load_route(write_route_gpx(tmp_path / "s.gpx", lat, lon, spiky), 8.0, _speed())
    assert np.abs(route.altitude_m - ele).max() < 1.0
    assert any("3 elevation spike(s)" in w for w in route.warnings)
    # a summit between sparse points is a real summit, not a spike
    north = np.arange(0.0, 2001.0, 200.0)
    peak = np.where(north == 1000.0, 60.0, 0.0) + 300.0
    la, lo = positions(np.zeros_like(north), north)
    summit = load_route(write_route_gpx(tmp_path / "p.gpx", la, lo, peak), 8.0, _speed())
    assert summit.altitude_m.max() == pytest.approx(360.0)


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("empty.gpx", "", "empty file"),
        ("junk.gpx", "not xml at all", "not a valid GPX"),
        ("wpt.gpx", '<gpx version="1.1"><wpt lat="46" lon="6"/></gpx>', "only waypoints"),
        ("one.gpx", '<gpx version="1.1"><rte><rtept lat="46" lon="6"/></rte></gpx>', "fewer than 2"),
        ("short.gpx", '<gpx version="1.1"><rte><rtept lat="46" lon="6"/><rtept lat="46.0005" '
         'lon="6"/></rte></gpx>', "only 56 m long"),
        ("none.tcx", "<TrainingCenterDatabase><Courses/></TrainingCenterDatabase>", "no course"),
        ("run.txt", "x", "unsupported file type"),
    ],
)  # fmt: skip
def test_bad_routes_are_one_line_errors_naming_the_file(tmp_path, name, content, says) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ActivityError) as exc:
        load_route(path, 8.0, _speed())
    msg = str(exc.value)
    assert msg.startswith(name) and "\n" not in msg and says in msg, msg


def _speed():
    from tests.predict_fixtures import speed_rules

    return speed_rules()


# --------------------------------------------------------------------------- plans


def test_timing_by_hand() -> None:
    """Segments of 10 m at 1, 2 and 1 m/s, a 60 s stop at 10 m: arrivals 0, 10, 75, 85 s."""
    c = Course(np.array([0.0, 10.0, 20.0, 30.0]), np.zeros(3))
    t = timing(c, PacePlan(np.array([3.6, 7.2, 3.6]), (Stop(11.0, 60.0),)))
    np.testing.assert_allclose(t.arrive_s, [0, 10, 75, 85])
    np.testing.assert_allclose(t.leave_s, [0, 70, 75, 85])
    np.testing.assert_allclose(t.moving_s, [0, 10, 15, 25])
    np.testing.assert_allclose(t.distance_at(np.array([5.0, 40.0, 72.0, 80.0])), [5, 10, 14, 25])
    assert t.stopped(np.array([10.0, 30.0, 70.0]), 60.0).tolist() == [False, True, False]


def test_even_effort_for_time(tmp_path) -> None:
    lat, lon, ele = hilly_loop()
    route = load_route(write_route_gpx(tmp_path / "h.gpx", lat, lon, ele), 8.0, _speed())
    c = course(route)
    speeds = even_effort_for_time(c, 3000.0, 30.0)
    assert float(np.sum(c.lengths_m / (speeds / 3.6))) == pytest.approx(3000.0, rel=1e-9)
    flat_equivalent = speeds / pacing.grade_speed_factor(c.grade)
    assert np.ptp(flat_equivalent) < 1e-6  # the same effort everywhere
    with pytest.raises(ValueError, match="outside what the route allows"):
        even_effort_for_time(c, 60.0, 30.0)


def test_stops_are_pauses_or_standing(bundle, tmp_path) -> None:
    """A 2-min stop leaves a gap predict sees as a pause; a 30 s one points at speed 0."""
    lat, lon, ele = hilly_loop(6000.0)
    route = load_route(write_route_gpx(tmp_path / "h.gpx", lat, lon, ele), 8.0, _speed())
    request = PlanRequest(pace_s_per_km=330.0, stops=(Stop(2000, 120), Stop(4000, 30)))
    out = plan_route(bundle, route, request)
    s = out.run.prediction.summary
    assert len(s["pauses"]) == 1 and s["pauses"][0]["duration_s"] >= 120
    assert out.summary["finish_s"] == pytest.approx(6.0 * 330 + 150, abs=0.5)
    assert out.summary["stopped_s"] == pytest.approx(150.0)
    # a stop at km 2 is in the second split (the one that ends there)
    assert [x["stopped_s"] for x in out.summary["splits"]] == [0, 120, 0, 30, 0, 0]
    speed = out.run.prediction.frame["speed_kmh"].to_numpy()
    standing = (out.run.distance_m > 3990) & (out.run.distance_m < 4010)
    assert (speed[standing][1:-1] == 0).sum() >= 2
    assert any("pauses" in w for w in out.warnings)


def test_pace_and_time_give_the_same_plan(bundle, tmp_path) -> None:
    lat, lon, ele = hilly_loop(5000.0)
    route = load_route(write_route_gpx(tmp_path / "h.gpx", lat, lon, ele), 8.0, _speed())
    moving = 300.0 * route.length_m / 1000.0  # 5:00 min/km
    a = plan_route(bundle, route, PlanRequest(pace_s_per_km=300.0, start_time=1.7e9))
    b = plan_route(bundle, route, PlanRequest(finish_s=moving + 60, stops=(Stop(2500, 60),)))
    assert a.summary["finish_s"] == pytest.approx(moving)
    assert b.summary["moving_s"] == pytest.approx(moving)
    assert b.summary["finish_s"] == pytest.approx(moving + 60)
    np.testing.assert_allclose(a.run.plan.speed_kmh, b.run.plan.speed_kmh)
    split_s = sum(x["moving_s"] for x in a.summary["splits"])
    assert split_s == pytest.approx(moving) and len(a.summary["splits"]) == 5
    grades = [x["grade_pct"] for x in a.summary["splits"]]
    paces = [x["pace_s_per_km"] for x in a.summary["splits"]]
    assert max(grades) > 2.0 and min(grades) < -2.0
    assert np.argmax(grades) == np.argmax(paces)  # the steepest km is the slowest ...
    assert np.argmin(grades) == np.argmin(paces)  # ... the steepest descent the fastest


# --------------------------------------------------------------------------- acceptance: consistency


@pytest.mark.parametrize("kind", ["gpx", "fit", "fit-paused", "gpx-standing"])
def test_recording_planned_at_its_own_pace_is_its_prediction(bundle, profile, tmp_path, kind):
    """Also a recording with a pause (no points for 150 s: a pause again) and one standing
    still for 90 s with the watch running (not a pause)."""
    w = simulated_workout(n=700, step_s=3.0, seed=7)
    if kind == "fit-paused":
        w = with_pause(w, 300, 150)
    if kind == "gpx-standing":
        w = with_standing(w, 300, 30)
    if kind.startswith("gpx"):
        path = write_gpx(tmp_path / "run.gpx", w, speed=kind == "gpx-standing")
    else:
        path = write_fit(tmp_path / "run.fit", w)
    act = read_activity(path)
    route = load_route(path, bundle.step_s, bundle.speed)
    for prof in (None, profile):
        ref = predict_activity(bundle, act, profile=prof)
        out = plan_route(bundle, route, PlanRequest(), profile=prof)
        assert out.summary["headline"] == ref.summary["headline"]
        assert _mae_vs_predict(out.run, act, ref) < 0.05
        assert out.summary["finish_s"] == pytest.approx(act.duration_s, abs=bundle.step_s)
        pauses, ref_pauses = out.run.prediction.summary["pauses"], ref.summary["pauses"]
        assert len(pauses) == len(ref_pauses) == (kind == "fit-paused")
        for p, q in zip(pauses, ref_pauses, strict=True):  # the plan's gap is on the grid
            assert p["start_s"] == pytest.approx(q["start_s"], abs=bundle.step_s)
            assert p["duration_s"] == pytest.approx(q["duration_s"], abs=bundle.step_s)


@pytest.mark.parametrize("seed", [3, 8])
def test_route_without_times_at_the_recorded_pace_profile(bundle, profile, tmp_path, seed):
    """The recording's positions and elevation as a GPX track WITHOUT times, planned with the
    recording's pace profile (`--pace-from`): predict's HR within 1 BPM MAE."""
    w = simulated_workout(n=900, step_s=4.0, seed=seed)
    original = write_gpx(tmp_path / "run.gpx", w, speed=True)
    route = load_route(route_of(tmp_path / "route.gpx", w), bundle.step_s, bundle.speed)
    assert route.recorded is None
    follow = load_route(original, bundle.step_s, bundle.speed)
    act = read_activity(original)
    for prof in (None, profile):
        request = PlanRequest(pace_from=follow, start_time=float(w.timestamp[0]))
        out = plan_route(bundle, route, request, profile=prof)
        ref = predict_activity(bundle, act, profile=prof)
        assert _mae_vs_predict(out.run, act, ref) < 1.0


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/samples/real not present")
def test_real_samples_planned_at_their_own_pace(bundle, tmp_path) -> None:
    from hrpred.io.routefile import RoutePoints
    from hrpred.serve.route import route_from_points

    files = sorted(f for f in REAL.iterdir() if f.name != "README.md")
    assert len(files) == 4
    for f in files:
        act = read_activity(f)
        ref = predict_activity(bundle, act)
        recorded = load_route(f, bundle.step_s, bundle.speed)
        out = plan_route(bundle, recorded, PlanRequest())
        assert _mae_vs_predict(out.run, act, ref) < 0.05, f.name
        # timestamps dropped: the file's positions (or distance) and elevation only
        pos = act.latitude is not None
        points = RoutePoints(
            act.latitude if pos else None, act.longitude if pos else None, act.altitude,
            None if pos else act.distance, f.name,
        )  # fmt: skip
        route = route_from_points(points)
        request = PlanRequest(pace_from=recorded, start_time=float(act.timestamp[0]))
        out = plan_route(bundle, route, request)
        assert _mae_vs_predict(out.run, act, ref) < 1.0, f.name


# --------------------------------------------------------------------------- acceptance: the cap


@pytest.fixture(scope="module")
def hills(tmp_path_factory) -> Path:
    lat, lon, ele = hilly_loop(10_000.0, 20.0, climb_m=80.0)
    return write_route_gpx(tmp_path_factory.mktemp("hills") / "hills.gpx", lat, lon, ele)


@pytest.mark.parametrize("personal", [False, True])
def test_cap_holds_and_three_percent_faster_breaks_it(bundle, profile, hills, personal):
    route = load_route(hills, bundle.step_s, bundle.speed)
    prof = profile if personal else None
    free = plan_route(bundle, route, PlanRequest(pace_s_per_km=330.0), profile=prof)
    cap = round(free.summary["avg_hr"])  # binds: about half the even-effort run is above it
    request = PlanRequest(hr_cap=cap, start_time=free.summary["start_time"])
    out = plan_route(bundle, route, request, profile=prof)
    assert out.summary["headline"] == ("personal" if personal else "population")
    res = out.summary["cap"]
    assert res["met"] and res["limited_by"] == "cap" and res["share"] >= CAP_SHARE
    run = out.run
    after = run.t_s >= 300.0
    assert np.mean(run.hr[after] <= cap) >= CAP_SHARE
    faster = predict_plan(
        bundle, route, out.course, PacePlan(run.plan.speed_kmh * 1.03, run.plan.stops),
        out.summary["start_time"], profile=prof,
    )  # fmt: skip
    assert share_under(faster, cap, 300.0) < CAP_SHARE
    # the cap slows the climb most: its split is the slowest relative to the even effort
    climb_km = int(np.argmax([s["grade_pct"] for s in out.summary["splits"]]))
    assert out.summary["splits"][climb_km]["pace_s_per_km"] > np.median(
        [s["pace_s_per_km"] for s in out.summary["splits"]]
    )


def test_cap_with_a_pace_only_slows_it_down_and_a_low_cap_says_so(bundle, hills) -> None:
    route = load_route(hills, bundle.step_s, bundle.speed)
    paced = plan_route(bundle, route, PlanRequest(pace_s_per_km=400.0))
    cap = paced.summary["avg_hr"]
    out = plan_route(bundle, route, PlanRequest(pace_s_per_km=400.0, hr_cap=cap))
    assert (out.run.plan.speed_kmh <= paced.run.plan.speed_kmh + 1e-9).all()
    assert out.summary["finish_s"] > paced.summary["finish_s"]
    easy = plan_route(bundle, route, PlanRequest(pace_s_per_km=600.0, hr_cap=225.0))
    assert easy.summary["cap"]["limited_by"] == "pace"
    slow = plan_route(bundle, route, PlanRequest(pace_s_per_km=600.0))
    np.testing.assert_allclose(easy.run.plan.speed_kmh, slow.run.plan.speed_kmh)
    low = plan_route(bundle, route, PlanRequest(hr_cap=80.0))
    assert low.summary["cap"]["limited_by"] == "walk" and not low.summary["cap"]["met"]


def test_zone_cap_and_request_errors(bundle, hills, tmp_path) -> None:
    route = load_route(hills, bundle.step_s, bundle.speed)
    out = plan_route(bundle, route, PlanRequest(zone=3), max_hr=200.0, rest_hr=50.0)
    assert out.summary["cap"]["cap_bpm"] == pytest.approx(50 + 0.8 * 150)
    with pytest.raises(ValueError, match="give a pace"):
        plan_route(bundle, route, PlanRequest())
    with pytest.raises(ValueError, match="zone must be 1-4"):
        plan_route(bundle, route, PlanRequest(zone=5))
    run = write_gpx(tmp_path / "run.gpx", simulated_workout(n=300, step_s=4.0))
    recorded = load_route(run, bundle.step_s, bundle.speed)
    with pytest.raises(ValueError, match="pass --replan"):
        plan_route(bundle, recorded, PlanRequest(pace_s_per_km=300.0))
    replanned = plan_route(bundle, recorded, PlanRequest(pace_s_per_km=300.0, replan=True))
    assert replanned.summary["pace_s_per_km"] == pytest.approx(300.0)


# --------------------------------------------------------------------------- numbers


def test_trimp_by_hand() -> None:
    hr = np.array([120.0, 150.0, 180.0, 170.0])
    x = (hr[:3] - 60) / 130  # rest 60, max 190; the last point stands for no time
    ref = sum(0.5 * xi * 0.64 * math.exp(1.92 * xi) for xi in x)
    assert trimp(hr, 30.0, 60.0, 190.0, "male") == pytest.approx(ref)
    ref_f = sum(0.5 * xi * 0.86 * math.exp(1.67 * xi) for xi in x)
    assert trimp(hr, 30.0, 60.0, 190.0, "female") == pytest.approx(ref_f)
    assert trimp(np.array([50.0, 250.0]), 60.0, 60.0, 190.0, "male") == 0.0


def test_text_inputs() -> None:
    assert clock_seconds("1:45:00") == 6300 and clock_seconds("5:30") == 330
    assert clock_seconds("4.5") == 270
    for bad in ("5:75", "a:b", "1:2:3:4", "-", ""):
        with pytest.raises(ValueError):
            clock_seconds(bad)
    assert parse_stops("5@1:00, 12.5@2:30") == [(5.0, 60.0), (12.5, 150.0)]
    for bad in ("5", "x@1:00", "5@", "0@1:00"):
        with pytest.raises(ValueError):
            parse_stops(bad)
    assert parse_start("2024-05-01T08:00") == parse_start("2024-05-01T10:00+02:00")
