"""hrpred.evaluate.metrics against direct numpy/pandas computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hrpred.evaluate.metrics import (
    RowSums,
    bias,
    mae,
    per_workout_mae,
    rmse,
    row_sums,
    summarize,
    summarize_sums,
)


@pytest.fixture
def arrays():
    rng = np.random.default_rng(3)
    n, t = 7, 30
    y = rng.normal(150, 15, (n, t))
    p = y + rng.normal(2, 6, (n, t))
    valid = rng.random((n, t)) > 0.2
    valid[3] = False  # a workout with no valid step
    elapsed = np.cumsum(rng.uniform(4, 12, (n, t)), axis=1)
    return y, p, valid, elapsed


def test_against_numpy(arrays):
    y, p, valid, elapsed = arrays
    e = (p - y)[valid]
    assert mae(y, p, valid) == pytest.approx(np.mean(np.abs(e)))
    assert rmse(y, p, valid) == pytest.approx(np.sqrt(np.mean(e**2)))
    assert bias(y, p, valid) == pytest.approx(np.mean(e))


def test_summarize_against_pandas(arrays):
    y, p, valid, elapsed = arrays
    n, t = y.shape
    df = pd.DataFrame(
        {
            "w": np.repeat(np.arange(n), t),
            "y": y.ravel(),
            "p": p.ravel(),
            "v": valid.ravel(),
            "t": elapsed.ravel(),
        }
    )
    df = df[df.v]
    df["ae"] = (df.p - df.y).abs()
    per = df.groupby("w").ae.mean()
    s = summarize(y, p, valid, elapsed)
    assert s["mae"] == pytest.approx(df.ae.mean())
    assert s["rmse"] == pytest.approx(np.sqrt(((df.p - df.y) ** 2).mean()))
    assert s["mae_after_2min"] == pytest.approx(df[df.t >= 120].ae.mean())
    assert s["workout_mae_mean"] == pytest.approx(per.mean())
    assert s["workout_mae_median"] == pytest.approx(per.median())
    assert s["bias"] == pytest.approx((df.p - df.y).mean())
    assert s["n_workouts"] == n - 1  # the all-invalid workout does not count
    assert s["n_steps"] == len(df)
    assert s["rmse"] >= s["mae"]


def test_per_workout_mae_nan_for_empty_rows(arrays):
    y, p, valid, _ = arrays
    w = per_workout_mae(y, p, valid)
    assert np.isnan(w[3])
    assert w[0] == pytest.approx(np.mean(np.abs(p[0] - y[0])[valid[0]]))


def test_invalid_steps_are_ignored(arrays):
    y, p, valid, elapsed = arrays
    p2 = p.copy()
    p2[~valid] = 1e6  # garbage where the mask is off must not move any metric
    assert summarize(y, p2, valid, elapsed) == summarize(y, p, valid, elapsed)


def test_rmse_is_global_not_mean_of_batch_rmses():
    # batch 1: two steps off by 1 BPM; batch 2: one step off by 10 BPM
    y = np.zeros((3, 2))
    p = np.array([[1.0, 1.0], [10.0, 0.0], [0.0, 0.0]])
    valid = np.array([[True, True], [True, False], [False, False]])
    batch_rmses = [rmse(y[:1], p[:1], valid[:1]), rmse(y[1:], p[1:], valid[1:])]
    assert batch_rmses == pytest.approx([1.0, 10.0])
    global_rmse = rmse(y, p, valid)
    assert global_rmse == pytest.approx(np.sqrt(102 / 3))
    assert abs(global_rmse - np.mean(batch_rmses)) > 0.1


def test_rmse_at_least_mae_random():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.normal(size=(4, 9))
        p = rng.normal(size=(4, 9)) * rng.uniform(0.1, 10)
        v = rng.random((4, 9)) > 0.5
        if v.any():
            assert rmse(y, p, v) >= mae(y, p, v) - 1e-12


def test_empty_and_shape_errors():
    z = np.zeros((2, 3))
    assert np.isnan(mae(z, z, np.zeros((2, 3), bool)))
    s = summarize(z, z, np.zeros((2, 3), bool), z)
    assert s["n_steps"] == 0 and s["n_workouts"] == 0
    with pytest.raises(ValueError, match="shape"):
        mae(z, np.zeros((2, 4)), np.ones((2, 3), bool))


def test_row_sums_in_chunks_equal_whole_array_summarize(arrays):
    y, p, valid, elapsed = arrays
    parts = [
        row_sums(y[s : s + 3], p[s : s + 3], valid[s : s + 3], elapsed[s : s + 3])
        for s in range(0, len(y), 3)  # 3 rows per chunk, fewer than the 7 rows
    ]
    sums = RowSums.concat(parts)
    whole = summarize(y, p, valid, elapsed)
    chunked = summarize_sums(sums)
    assert chunked.keys() == whole.keys()
    for key, value in whole.items():
        assert chunked[key] == pytest.approx(value, rel=1e-12, nan_ok=True), key
    # per-workout values are bit-identical (same per-row reduction)
    np.testing.assert_array_equal(sums.workout_mae(), per_workout_mae(y, p, valid))
    sel = np.array([True, False, True, True, False, False, True])
    sub = summarize_sums(sums.take(sel))
    ref = summarize(y[sel], p[sel], valid[sel], elapsed[sel])
    for key, value in ref.items():
        assert sub[key] == pytest.approx(value, rel=1e-12, nan_ok=True), key


def test_summarize_sums_of_nothing_is_nan():
    s = summarize_sums(RowSums.concat([]))
    assert s["n_steps"] == 0 and s["n_workouts"] == 0 and np.isnan(s["mae"])
