"""hrpred.serve.predict: resampling, no train/serve feature skew, inference, summary numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from hrpred.features.batch import featurize_batch
from hrpred.io.userfiles import Activity, ActivityError, read_activity
from hrpred.serve.predict import (
    DEFAULT_MAX_HR,
    load_bundle,
    predict_activity,
    resample_activity,
    window_mean,
    zone_bounds,
)
from tests.predict_fixtures import (
    FEATURES,
    make_bundle,
    simulated_workout,
    write_csv,
    write_gpx,
)

STEP = 8.0


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return load_bundle(make_bundle(tmp_path_factory.mktemp("bundle"), step_s=STEP, seq_len=200))


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


def test_dense_file_is_averaged_onto_the_grid():
    t = 1_000.0 + np.arange(0, 1201, 1.0)  # 1 Hz for 20 min
    speed = 8.0 + 0.005 * (t - t[0])  # linear ramp: a centred mean equals the centre value
    act = Activity(timestamp=t, speed=speed, altitude=np.full(t.size, 50.0), source="x")
    grid = resample_activity(act, STEP)
    assert grid.timestamp[0] == t[0] and np.allclose(np.diff(grid.timestamp), STEP)
    assert len(grid.timestamp) == 1200 // 8 + 1
    inner = (grid.timestamp - t[0] >= STEP) & (t[-1] - grid.timestamp >= STEP)
    np.testing.assert_allclose(grid.speed_kmh[inner], 8.0 + 0.005 * (grid.timestamp[inner] - t[0]))
    # noisy input: the grid value is the mean of the samples within half a step
    rng = np.random.default_rng(0)
    noisy = speed + rng.normal(0, 2.0, t.size)
    g2 = resample_activity(Activity(timestamp=t, speed=noisy, source="x"), STEP)
    k = 30
    sel = np.abs(t - g2.timestamp[k]) <= STEP / 2
    assert g2.speed_kmh[k] == pytest.approx(noisy[sel].mean())
    assert window_mean(t, noisy, STEP)[sel.argmax() + 4] == pytest.approx(noisy[sel].mean())
    assert any("no altitude" in m for m in g2.warnings)
    np.testing.assert_array_equal(g2.altitude_m, 0.0)


def test_recording_gaps_get_their_average_speed():
    t = np.concatenate([np.arange(0, 600, 5.0), np.arange(900, 1500, 5.0)])
    dist = np.concatenate([np.arange(0, 600, 5.0) * 3.0, 1800 + 0 * np.arange(900, 1500, 5.0)])
    dist[120:] = 1800.0 + 600.0 + (t[120:] - 900) * 3.0  # 600 m covered during the 300 s gap
    act = Activity(timestamp=t, distance=dist, source="gap")
    grid = resample_activity(act, STEP)
    inside = (grid.timestamp > 595) & (grid.timestamp < 900)
    np.testing.assert_allclose(grid.speed_kmh[inside], (dist[120] - dist[119]) / 305.0 * 3.6)
    assert grid.paused[inside].all() and not grid.paused[~inside].any()
    # without distance or positions the gap is a pause (speed 0)
    act2 = Activity(timestamp=t, speed=np.full(t.size, 10.8), source="gap")
    g2 = resample_activity(act2, STEP)
    np.testing.assert_array_equal(g2.speed_kmh[inside], 0.0)


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


def test_no_altitude_uses_zeros(tmp_path, bundle):
    w = simulated_workout(n=100, step_s=STEP)
    act = read_activity(write_gpx(tmp_path / "flat.gpx", w, ele=False))
    pred = predict_activity(bundle, act)
    assert any("no altitude" in m for m in pred.warnings)
    assert pred.frame["altitude_m"].isna().all()
    np.testing.assert_array_equal(pred.grid.altitude_m, 0.0)
