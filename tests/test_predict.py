"""hrpred.serve.predict: resampling, no train/serve feature skew, inference, summary numbers,
and the calibrated 80% band (issue 14) of a bundle that carries one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from hrpred.bundle.format import BundleError
from hrpred.bundle.runtime import load_bundle
from hrpred.features.batch import featurize_batch
from hrpred.io.userfiles import Activity, ActivityError, read_activity
from hrpred.serve.inputs import grid_features, resample_activity
from hrpred.serve.predict import predict_activity
from hrpred.serve.summary import DEFAULT_MAX_HR, ZONES, zone_bounds
from hrpred.uncertainty import Calibration
from tests.predict_fixtures import (
    FEATURES,
    make_bundle,
    simulated_workout,
    speed_rules,
    write_csv,
    write_gpx,
)

STEP = 8.0
# A band like the default simulation's (models/calibration.json): the 0-history multipliers are
# the largest; "1-2" has too few validation workouts and falls back to the pooled ones.
CAL = Calibration(
    0.8,
    {"all": 1.4, "0": 3.1, "3-9": 1.35, "10+": 1.3},
    {"all": 1.2, "0": 2.1, "3-9": 1.05, "10+": 1.0},
    {"all": 200, "0": 21, "1-2": 8, "3-9": 80, "10+": 67},
)


def with_band(src: Path, dst: Path, cal: Calibration = CAL) -> Path:
    """A copy of bundle `src` whose config.json carries `cal` as its band (what export writes
    from models/calibration.json; the weights are the same)."""
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    config["band"] = cal.to_json()
    (dst / "config.json").write_text(json.dumps(config))
    return dst


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle"), step_s=STEP, seq_len=200)


@pytest.fixture(scope="module")
def bundle(bundle_dir):
    return load_bundle(bundle_dir)


@pytest.fixture(scope="module")
def banded(bundle_dir, tmp_path_factory):
    """The same bundle with a calibrated band."""
    return load_bundle(with_band(bundle_dir, tmp_path_factory.mktemp("banded") / "bundle"))


def _featurize_path(w, gender: str, seq_len: int) -> tuple[np.ndarray, int]:
    """Features the featurize stage computes for this workout as clean data (first row)."""
    batch = pa.RecordBatch.from_pydict(
        {
            "workout_id": [1],
            "user_id": [2],
            "gender": [gender],
            "timestamp": [w.timestamp.tolist()],
            "speed": [w.speed_kmh.tolist()],
            "altitude": [w.altitude_m.tolist()],
            "heart_rate": [w.heart_rate.tolist()],
            "hr_valid": [[True] * len(w.timestamp)],
        }
    )
    fb = featurize_batch(batch, FEATURES, seq_len, "truncate")
    index = pd.DataFrame(fb.index)  # a DataFrame (or records) with one line per row
    return fb.features[0], int(index["length"].iloc[0])


@pytest.mark.parametrize("fmt", ["gpx", "csv"])
@pytest.mark.parametrize("n", [150, 260])  # shorter and longer than the training rows (200)
def test_predict_features_equal_featurize_features(tmp_path, bundle, fmt, n):
    w = simulated_workout(n=n, step_s=STEP, seed=n)
    if fmt == "gpx":
        path = write_gpx(tmp_path / "w.gpx", w, speed=True)
    else:
        cols = ("timestamp", "speed (km/h)", "altitude", "heart_rate")
        path = write_csv(tmp_path / "w.csv", w, columns=cols)
    pred = predict_activity(bundle, read_activity(path), gender="female")
    want, length = _featurize_path(w, "female", bundle.seq_len)
    assert pred.features.shape == (n, len(FEATURES))
    assert length == min(n, bundle.seq_len)
    # CSV keeps every digit; GPX speed goes through m/s (a last-bit rounding at most)
    tol = 0.0 if fmt == "csv" else 1e-5
    np.testing.assert_allclose(pred.features[:length], want[:length], rtol=tol, atol=tol)
    np.testing.assert_array_equal(pred.grid.timestamp, w.timestamp.astype(float))


def test_inference_matches_a_manual_forward_pass(tmp_path, bundle):
    w = simulated_workout(n=320, step_s=STEP, seed=5)  # longer than seq_len: full length
    pred = predict_activity(bundle, read_activity(write_gpx(tmp_path / "w.gpx", w, speed=True)))
    mean = np.array([bundle.scaler.get(f, {"mean": 0.0})["mean"] for f in bundle.features])
    std = np.array([bundle.scaler.get(f, {"std": 1.0})["std"] for f in bundle.features])
    x = torch.tensor(((pred.features - mean) / std)[None], dtype=torch.float32)
    m = bundle.model
    with torch.no_grad():
        out, _ = m.lstm(x)
        ref = (m.head(out)[0, :, 0] * m.target_std + m.target_mean).numpy()
    np.testing.assert_allclose(pred.hr_grid, ref, atol=1e-3)
    assert any("longer than the training rows" in x for x in pred.warnings)
    # on-grid file: the per-point prediction is the grid prediction
    np.testing.assert_allclose(pred.frame["hr_pred"], pred.hr_grid, atol=1e-9)


def test_dense_file_is_sampled_on_the_grid():
    """A 1 Hz file gives the recording a device logging every step would have made: every
    channel at the grid times (clean averages nothing; tests/test_skew.py: no skew)."""
    t = 1_000.0 + np.arange(0, 1201, 1.0)  # 1 Hz for 20 min
    rng = np.random.default_rng(0)
    speed = 8.0 + 0.005 * (t - t[0]) + rng.normal(0, 1.0, t.size)
    act = Activity(timestamp=t, speed=speed, altitude=np.full(t.size, 50.0), source="x")
    grid = resample_activity(act, STEP, speed_rules())
    assert grid.timestamp[0] == t[0] and np.allclose(np.diff(grid.timestamp), STEP)
    assert len(grid.timestamp) == 1200 // 8 + 1
    on = np.searchsorted(t, grid.timestamp)
    np.testing.assert_array_equal(grid.speed_kmh, speed[on])  # native: not smoothed
    np.testing.assert_array_equal(grid.altitude_m, 50.0)
    np.testing.assert_allclose(grid.point_speed_kmh, np.interp(t, grid.timestamp, speed[on]))
    g2 = resample_activity(Activity(timestamp=t, speed=speed, source="x"), STEP, speed_rules())
    assert any("no altitude" in m for m in g2.warnings)
    np.testing.assert_array_equal(g2.altitude_m, 0.0)


def test_gps_speed_on_the_grid_is_the_clean_rules():
    """GPS speed between grid positions, smoothed by clean's causal moving mean."""
    w = simulated_workout(n=1201, step_s=1.0, seed=7)
    t = w.timestamp.astype(float)
    act = Activity(timestamp=t, latitude=w.latitude, longitude=w.longitude, source="g")
    rules = speed_rules()
    grid = resample_activity(act, STEP, rules)
    assert grid.speed_source == "gps"
    # reference: the true step average speed (distance covered / step) under a trailing mean
    on = np.searchsorted(t, grid.timestamp)
    step_avg = np.diff(w.distance_m[on]) / STEP * 3.6
    step_avg = np.r_[step_avg[:1], step_avg]
    k = rules.smooth_window
    want = pd.Series(step_avg).rolling(k, min_periods=1).mean().to_numpy()
    np.testing.assert_allclose(grid.speed_kmh, want, atol=0.02)


def test_recording_gaps_get_their_average_speed():
    t = np.concatenate([np.arange(0, 600, 5.0), np.arange(900, 1500, 5.0)])
    dist = np.concatenate([np.arange(0, 600, 5.0) * 3.0, 1800 + 0 * np.arange(900, 1500, 5.0)])
    dist[120:] = 1800.0 + 600.0 + (t[120:] - 900) * 3.0  # 600 m covered during the 300 s gap
    act = Activity(timestamp=t, distance=dist, source="gap")
    rules = speed_rules()
    grid = resample_activity(act, STEP, rules)
    inside = (grid.timestamp > 595) & (grid.timestamp < 900)
    assert grid.speed_source == "distance" and grid.paused[inside].all()
    assert not grid.paused[~inside].any()
    # the pause is reported (start and length from the file's own timestamps), the run kept
    assert grid.pauses == [(595.0, 305.0)]
    # since_pause restarts at the grid's first step after the pause, as on the cleaned data
    # (where the pause is one long step): 0 there, the elapsed time before it
    sp = grid_features(["since_pause"], grid, None)[:, 0]
    after = int(np.flatnonzero(grid.timestamp >= 900)[0])
    assert sp[after] == 0.0 and sp[after - 1] > 0 and sp[after + 1] == grid.step_s
    assert np.array_equal(sp[:after], grid.timestamp[:after] - grid.timestamp[0])
    from hrpred.serve.presentation import format_pauses

    line = format_pauses([{"start_s": a, "duration_s": d} for a, d in grid.pauses])
    assert line == "1 pause(s): at 9.9 min for 5.1 min"
    # the distance interpolated across the gap gives its average speed (after the trailing
    # smoothing window has passed the gap's start)
    settled = inside & (grid.timestamp > 595 + rules.smooth_window * STEP)
    np.testing.assert_allclose(grid.speed_kmh[settled], (dist[120] - dist[119]) / 305.0 * 3.6)
    # native speed: the gap's average from distance, 0 without distance or positions
    act1 = Activity(timestamp=t, speed=np.full(t.size, 10.8), distance=dist, source="gap")
    g1 = resample_activity(act1, STEP, rules)
    np.testing.assert_allclose(g1.speed_kmh[inside], (dist[120] - dist[119]) / 305.0 * 3.6)
    act2 = Activity(timestamp=t, speed=np.full(t.size, 10.8), source="gap")
    g2 = resample_activity(act2, STEP, rules)
    np.testing.assert_array_equal(g2.speed_kmh[inside], 0.0)


def test_bundle_carries_the_clean_speed_rules(tmp_path, bundle):
    assert bundle.speed == speed_rules()
    cfg = bundle.config.copy()
    del cfg["speed"]
    from hrpred.bundle.format import speed_config

    with pytest.raises(BundleError, match="speed rules"):
        speed_config(cfg)


def test_summary_numbers_against_a_reference(tmp_path, bundle):
    w = simulated_workout(n=240, step_s=STEP, seed=9)
    w.heart_rate[5] = 0  # an invalid reading must not enter the error
    act = read_activity(write_gpx(tmp_path / "w.gpx", w, speed=True))
    pred = predict_activity(bundle, act, gender="male", max_hr=150.0)
    s, hr = pred.summary, pred.hr_grid
    assert s["avg_hr"] == pytest.approx(hr.mean())
    assert s["max_hr"] == pytest.approx(hr.max())
    assert s["drift_bpm"] == pytest.approx(hr[120:].mean() - hr[:120].mean())
    edges = [0.6 * 150, 0.7 * 150, 0.8 * 150, 0.9 * 150]
    counts = np.histogram(hr[:-1], bins=[-np.inf, *edges, np.inf])[0]  # last point: no time
    ref = dict(zip(["Z1", "Z2", "Z3", "Z4", "Z5"], counts * STEP, strict=True))
    assert s["zones"] == pytest.approx(ref)
    assert sum(s["zones"].values()) == pytest.approx(act.duration_s)
    ok = np.arange(240) != 5
    err = pred.frame["hr_pred"].to_numpy()[ok] - w.heart_rate[ok]
    assert s["mae"] == pytest.approx(np.abs(err).mean())
    assert s["rmse"] == pytest.approx(np.sqrt((err**2).mean()))
    assert s["n_hr"] == 239
    assert list(pred.frame.columns) == [
        "t_s", "timestamp", "speed_kmh", "altitude_m", "hr_pred", "hr_true",
    ]  # fmt: skip
    # a bundle without a band: no band anywhere
    assert s["band"] is None and s["headline"] == "population"


def test_zone_bounds():
    assert zone_bounds(200, None, None)[0] == pytest.approx([120, 140, 160, 180])
    top = 208 - 0.7 * 40
    assert zone_bounds(None, None, 40)[0] == pytest.approx(
        [0.6 * top, 0.7 * top, 0.8 * top, 0.9 * top]
    )
    assert zone_bounds(None, None, None)[2] == DEFAULT_MAX_HR
    # Karvonen: rest + fraction of the reserve
    assert zone_bounds(190, 50, None)[0] == pytest.approx(
        [50 + f * 140 for f in (0.6, 0.7, 0.8, 0.9)]
    )
    with pytest.raises(ValueError):
        zone_bounds(150, 160, None)


def test_no_gender_warns_and_bad_inputs_raise(tmp_path, bundle):
    act = read_activity(write_gpx(tmp_path / "w.gpx", simulated_workout(n=100, step_s=STEP)))
    pred = predict_activity(bundle, act)
    assert any("gender" in m for m in pred.warnings)
    assert "hr_true" in pred.frame and np.isfinite(pred.frame["hr_pred"]).all()
    with pytest.raises(ValueError, match="max HR"):
        predict_activity(bundle, act, max_hr=400)
    with pytest.raises(ValueError, match="gender"):
        predict_activity(bundle, act, gender="robot")


def test_no_movement_and_too_short_are_errors(bundle):
    t = np.arange(0, 1200, 1.0)
    still = Activity(timestamp=t, speed=np.zeros(t.size), source="still.fit")
    with pytest.raises(ActivityError, match="no movement"):
        predict_activity(bundle, still)
    gps_still = Activity(
        timestamp=t, latitude=np.full(t.size, 46.0), longitude=np.full(t.size, 7.0), source="g"
    )
    with pytest.raises(ActivityError, match="no movement"):
        predict_activity(bundle, gps_still)
    short = Activity(timestamp=np.arange(0, 30, 1.0), speed=np.full(30, 10.0), source="s.csv")
    with pytest.raises(ActivityError, match="only 29 s recorded"):
        predict_activity(bundle, short)
    hr_only = Activity(timestamp=t, heart_rate=np.full(t.size, 120.0), source="hr.csv")
    with pytest.raises(ActivityError, match="no usable speed, distance or GPS"):
        predict_activity(bundle, hr_only)


def test_no_altitude_uses_zeros(tmp_path, bundle):
    w = simulated_workout(n=100, step_s=STEP)
    act = read_activity(write_gpx(tmp_path / "flat.gpx", w, ele=False))
    pred = predict_activity(bundle, act)
    assert any("no altitude" in m for m in pred.warnings)
    assert pred.frame["altitude_m"].isna().all()
    np.testing.assert_array_equal(pred.grid.altitude_m, 0.0)


# --------------------------------------------------------------------------- issue 14: the band


def test_band_of_the_population_prediction(tmp_path, bundle, banded):
    """The 0-history band around the population prediction, against numpy on the network's own
    spread and the calibration table."""
    w = simulated_workout(n=240, step_s=STEP / 2, seed=3)  # off-grid: points are interpolated
    act = read_activity(write_gpx(tmp_path / "w.gpx", w, speed=True))
    pred = predict_activity(banded, act, max_hr=170.0)
    plain = predict_activity(bundle, act, max_hr=170.0)
    s, f = pred.summary, pred.frame
    # the central prediction is the band-less bundle's, unchanged
    np.testing.assert_array_equal(f["hr_pred"], plain.frame["hr_pred"])
    assert s["headline"] == "population" and plain.summary["band"] is None
    # per step: hr -/+ q0 * spread on the grid, interpolated onto the file's points
    hr, spread = (np.asarray(a, np.float64) for a in banded.predict_spread(pred.features))
    lo, hi = hr - CAL.step["0"] * spread, hr + CAL.step["0"] * spread
    t = act.timestamp
    np.testing.assert_allclose(f["hr_p10"], np.interp(t, pred.grid.timestamp, lo), atol=1e-3)
    np.testing.assert_allclose(f["hr_p90"], np.interp(t, pred.grid.timestamp, hi), atol=1e-3)
    np.testing.assert_array_equal(f["hr_p50"], f["hr_pred"])
    assert (f["hr_p10"] <= f["hr_p50"]).all() and (f["hr_p50"] <= f["hr_p90"]).all()
    # the workout average: mean -/+ q_avg0 * mean spread; the max: max of each band curve
    band = s["band"]
    assert band["level"] == 0.8 and band["history_runs"] == 0
    half = CAL.average["0"] * spread.mean()
    assert band["avg_hr"] == pytest.approx([hr.mean() - half, hr.mean() + half], abs=1e-3)
    assert band["avg_hr"][0] < s["avg_hr"] < band["avg_hr"][1]
    assert band["max_hr"] == pytest.approx([lo.max(), hi.max()], abs=1e-3)
    assert band["max_hr"][0] <= s["max_hr"] <= band["max_hr"][1]
    # zone times: the least and most of the lower, central and upper curves' times
    edges = [0.6 * 170, 0.7 * 170, 0.8 * 170, 0.9 * 170]
    on = [np.histogram(c[:-1], bins=[-np.inf, *edges, np.inf])[0] * STEP for c in (lo, hr, hi)]
    for k, z in enumerate(ZONES):
        times = [c[k] for c in on]
        assert band["zones"][z] == pytest.approx([min(times), max(times)])
        assert band["zones"][z][0] <= s["zones"][z] <= band["zones"][z][1]
    assert any(band["zones"][z][1] > band["zones"][z][0] for z in ZONES)  # the test can fail
    json.dumps(s, allow_nan=False)  # the summary is plain JSON


def test_malformed_band_is_a_one_line_bundle_error(tmp_path, bundle_dir):
    bad = Calibration(0.8, {"all": -1.0}, {"all": 1.0}, {"all": 10})
    broken = load_bundle(with_band(bundle_dir, tmp_path / "bundle", bad))
    act = read_activity(write_gpx(tmp_path / "w.gpx", simulated_workout(n=100, step_s=STEP)))
    with pytest.raises(BundleError, match="band: .*re-export") as exc:
        predict_activity(broken, act)
    assert "\n" not in str(exc.value)


def test_onnx_backend_predicts_as_the_torch_backend(tmp_path):
    """A bundle with model.onnx predicts on ONNX Runtime; per-point HR, band and summary match
    the PyTorch backend within export's parity tolerance (1e-3 BPM), and the PyTorch model
    (`Bundle.model`) is still there for whoever needs it, built on first use."""
    src = make_bundle(tmp_path / "onnx", step_s=STEP, seq_len=200, onnx=True)
    path = with_band(src, tmp_path / "banded")
    ort, ref = load_bundle(path), load_bundle(path, backend="torch")
    assert (ort.backend, ref.backend) == ("onnx", "torch")
    w = simulated_workout(n=320, step_s=STEP, seed=9)
    act = read_activity(write_gpx(tmp_path / "w.gpx", w, speed=True))
    got, want = predict_activity(ort, act), predict_activity(ref, act)
    np.testing.assert_allclose(got.hr_grid, want.hr_grid, rtol=0, atol=1e-3)
    assert list(got.frame.columns) == list(want.frame.columns)
    for col in ("hr_pred", "hr_p10", "hr_p50", "hr_p90"):
        np.testing.assert_allclose(got.frame[col], want.frame[col], rtol=0, atol=1e-3)
    assert got.summary["avg_hr"] == pytest.approx(want.summary["avg_hr"], abs=1e-3)
    assert got.summary["band"]["avg_hr"] == pytest.approx(want.summary["band"]["avg_hr"], abs=1e-3)
    assert got.warnings == want.warnings
    m = ort.model  # the same weights as the torch backend's model
    mine, theirs = m.state_dict(), ref.model.state_dict()
    assert list(mine) == list(theirs)
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
