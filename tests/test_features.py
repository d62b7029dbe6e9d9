"""Feature registry: no HR in defaults, each feature vs an independent pandas/loop reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hrpred.features.config import FeaturizeConfig
from hrpred.features.registry import (
    BINARY_FEATURES,
    HR_FEATURES,
    LEAKY_GROUP,
    REGISTRY,
    WorkoutInputs,
    compute_features,
    expand_names,
    hr_workout_type,
)

# the committed list (params.yaml is its only home), read independently of the loader
DEFAULT_FEATURES = tuple(
    yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())["featurize"][
        "features"
    ]
)


def make_inputs(n: int = 300, seed: int = 0, gender: str = "male") -> WorkoutInputs:
    rng = np.random.default_rng(seed)
    ts = 1.4e9 + np.cumsum(rng.integers(1, 25, n)).astype(float)
    ts[n // 3] = ts[n // 3 - 1]  # a zero-length step
    speed = np.clip(10 + np.cumsum(rng.normal(0, 0.5, n)), 0, 25)
    alt = 200 + np.cumsum(rng.normal(0, 1.5, n))
    return WorkoutInputs.from_arrays(ts, speed, alt, gender)


def col(names: list[str], inputs: WorkoutInputs, name: str) -> np.ndarray:
    return compute_features(names, inputs)[:, names.index(name)]


def test_params_feature_list_is_the_reference_set_without_hr(config) -> None:
    names = list(config(FeaturizeConfig, "featurize").features)
    assert tuple(names) == DEFAULT_FEATURES
    assert len(names) == 14 and len(set(names)) == 14
    assert not set(expand_names(names)) & HR_FEATURES


def test_defaults_do_not_read_hr() -> None:
    """Features are byte-identical whatever HR is passed alongside (and HR is not an input)."""
    w = make_inputs()
    names = list(DEFAULT_FEATURES) + ["elapsed_time", "speed_ema_60s", "grade"]
    base = compute_features(names, w)
    rng = np.random.default_rng(1)
    for hr in (np.full(len(w), 120.0), rng.uniform(60, 200, len(w)), np.full(len(w), np.nan)):
        assert compute_features(names, w, hr=hr).tobytes() == base.tobytes()
    assert "heart_rate" not in WorkoutInputs.__dataclass_fields__
    assert not any(REGISTRY[n].needs_hr for n in names)


def test_leaky_feature_is_refused_without_hr_and_reads_hr() -> None:
    w = make_inputs(n=200)
    with pytest.raises(ValueError, match="leaky"):
        compute_features(["speed", LEAKY_GROUP], w)
    low = compute_features([LEAKY_GROUP], w, hr=np.full(200, 130.0))
    high = compute_features([LEAKY_GROUP], w, hr=np.full(200, 175.0))
    assert low.shape == (200, 3)
    assert (low[:, 0] == 1).all() and (high[:, 2] == 1).all()  # recovery vs intensive
    assert not set(HR_FEATURES) & set(DEFAULT_FEATURES)
    assert HR_FEATURES <= BINARY_FEATURES


def test_hr_workout_type_rules() -> None:
    assert hr_workout_type(np.full(40, 150.0)) == "unknown"
    assert hr_workout_type(np.full(100, 175.0)) == "intensive"
    assert hr_workout_type(np.full(100, 155.0)) == "steady"
    assert hr_workout_type(np.full(100, 135.0)) == "recovery"
    assert hr_workout_type(np.tile([130.0, 180.0], 50)) == "intervals"


def test_output_shape_dtype_and_order() -> None:
    w = make_inputs()
    x = compute_features(list(DEFAULT_FEATURES), w)
    assert x.shape == (len(w), 14) and x.dtype == np.float32
    swapped = compute_features(["altitude", "speed"], w)
    np.testing.assert_array_equal(swapped[:, 1], x[:, 0])


@pytest.mark.parametrize(
    ("name", "source", "k"),
    [
        ("speed_lag_2", "speed", 2), ("speed_lag_5", "speed", 5), ("speed_lag_10", "speed", 10),
        ("altitude_lag_30", "altitude", 30), ("altitude_lag_60", "altitude", 60),
    ],
)  # fmt: skip
def test_lags_match_pandas_shift(name: str, source: str, k: int) -> None:
    w = make_inputs()
    s = pd.Series(w.speed_kmh if source == "speed" else w.altitude_m)
    ref = s.shift(k).fillna(s.iloc[0]).to_numpy(np.float32)
    np.testing.assert_array_equal(col([name], w, name), ref)


@pytest.mark.parametrize("window", [5, 10, 30])
@pytest.mark.parametrize("n", [3, 50, 300])
def test_rolling_matches_pandas_min_periods_1(window: int, n: int) -> None:
    """Also for n < window: trailing mean, not the reference's global-mean quirk."""
    w = make_inputs(n=n)
    ref = pd.Series(w.speed_kmh).rolling(window, min_periods=1).mean().to_numpy(np.float32)
    name = f"rolling_speed_{window}"
    np.testing.assert_allclose(col([name], w, name), ref, rtol=1e-6, atol=1e-5)


def test_derivatives_match_pandas_diff() -> None:
    w = make_inputs()
    for name, x in (("speed_derivative", w.speed_kmh), ("altitude_derivative", w.altitude_m)):
        ref = pd.Series(x).diff().fillna(0.0).to_numpy(np.float32)
        np.testing.assert_array_equal(col([name], w, name), ref)


def test_cumulative_elevation_gain_matches_pandas() -> None:
    w = make_inputs()
    ref = pd.Series(w.altitude_m).diff().clip(lower=0).fillna(0).cumsum().to_numpy(np.float32)
    np.testing.assert_allclose(col(["cumulative_elevation_gain"], w, "cumulative_elevation_gain"),
                               ref, rtol=1e-6)  # fmt: skip


def test_speed_altitude_gender_elapsed() -> None:
    w = make_inputs()
    x = compute_features(["speed", "altitude", "gender", "elapsed_time"], w)
    np.testing.assert_array_equal(x[:, 0], w.speed_kmh.astype(np.float32))
    np.testing.assert_array_equal(x[:, 1], w.altitude_m.astype(np.float32))
    assert (x[:, 2] == 1.0).all()
    np.testing.assert_array_equal(x[:, 3], (w.timestamp - w.timestamp[0]).astype(np.float32))
    for g, code in (("female", 0.0), ("unknown", 0.5), ("", 0.5), ("Male", 1.0)):
        wg = WorkoutInputs.from_arrays(w.timestamp, w.speed_kmh, w.altitude_m, g)
        assert (compute_features(["gender"], wg) == code).all()


def ema_loop(v: np.ndarray, t: np.ndarray, tau: float) -> np.ndarray:
    y = np.empty(len(v))
    y[0] = v[0]
    for i in range(1, len(v)):
        a = 1.0 - np.exp(-max(t[i] - t[i - 1], 0.0) / tau)
        y[i] = y[i - 1] + a * (v[i] - y[i - 1])
    return y


@pytest.mark.parametrize("tau", [30, 60, 120])
def test_ema_matches_plain_loop(tau: int) -> None:
    # Long enough (hours) to cross many of the closed form's blocks, with a long gap.
    w = make_inputs(n=2000, seed=3)
    ts = w.timestamp.copy()
    ts[1500:] += 5000.0
    w = WorkoutInputs.from_arrays(ts, w.speed_kmh, w.altitude_m, "male")
    name = f"speed_ema_{tau}s"
    ref = ema_loop(w.speed_kmh, ts, float(tau)).astype(np.float32)
    np.testing.assert_allclose(col([name], w, name), ref, rtol=1e-5, atol=1e-4)


def test_grade_matches_loop() -> None:
    w = make_inputs()
    ref = np.zeros(len(w))
    for i in range(1, len(w)):
        d = w.speed_kmh[i] / 3.6 * max(w.timestamp[i] - w.timestamp[i - 1], 0.0)
        if d >= 1.0:
            ref[i] = np.clip((w.altitude_m[i] - w.altitude_m[i - 1]) / d, -0.4, 0.4)
    np.testing.assert_allclose(col(["grade"], w, "grade"), ref.astype(np.float32), atol=1e-7)


def test_since_pause_restarts_after_long_steps_or_marks() -> None:
    w = make_inputs(n=200, seed=5)
    ts = w.timestamp.copy()
    ts[80:] += 600.0  # a 10-min pause before step 80
    ts[150:] += 60.0  # a step of 61-84 s: over 60 s, a pause too
    paused = WorkoutInputs.from_arrays(ts, w.speed_kmh, w.altitude_m, "male")
    ref = np.empty(len(ts))
    last = ts[0]
    for i in range(len(ts)):  # plain loop: restart at every step longer than 60 s
        if i and ts[i] - ts[i - 1] > 60.0:
            last = ts[i]
        ref[i] = ts[i] - last
    np.testing.assert_allclose(col(["since_pause"], paused, "since_pause"), ref.astype(np.float32))
    assert col(["since_pause"], paused, "since_pause")[80] == 0.0
    assert "since_pause" not in DEFAULT_FEATURES  # default results do not move
    marks = np.zeros(len(ts), dtype=bool)
    marks[[40, 120]] = True  # a resampled grid marks its pauses instead
    grid = WorkoutInputs.from_arrays(w.timestamp, w.speed_kmh, w.altitude_m, "male", marks)
    x = col(["since_pause"], grid, "since_pause")
    assert x[40] == x[120] == 0.0 and x[39] == w.timestamp[39] - w.timestamp[0]
    with pytest.raises(ValueError, match="resume"):
        WorkoutInputs.from_arrays(w.timestamp, w.speed_kmh, w.altitude_m, "male", marks[:-1])


def test_single_step_and_empty_workouts() -> None:
    names = [*DEFAULT_FEATURES, "speed_ema_30s", "grade", "elapsed_time", "since_pause"]
    one = WorkoutInputs.from_arrays([1.0], [10.0], [5.0], "female")
    x = compute_features(names, one)
    assert x.shape == (1, len(names)) and np.isfinite(x).all()
    empty = WorkoutInputs.from_arrays([], [], [], "male")
    assert compute_features(names, empty).shape == (0, len(names))


def test_unknown_and_duplicate_names_rejected() -> None:
    with pytest.raises(ValueError, match="unknown feature"):
        expand_names(["speed", "heart_rate"])
    with pytest.raises(ValueError, match="twice"):
        expand_names(["speed", "speed"])
