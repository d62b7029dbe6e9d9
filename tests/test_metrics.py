"""hrpred.evaluate.metrics (chunked per-row sums) against direct numpy/pandas computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hrpred.evaluate.metrics import RowSums, row_sums, summarize_sums

# --- whole-array oracles (no chunking, no per-row sums) ---------------------------------


def per_workout_mae(hr_true, hr_pred, valid) -> np.ndarray:
    abs_err = np.where(valid, np.abs(np.asarray(hr_pred, np.float64) - hr_true), 0.0)
    n = valid.sum(axis=1)
    out = np.full(valid.shape[0], np.nan)
    out[n > 0] = abs_err[n > 0].sum(axis=1) / n[n > 0]
    return out


def summarize(hr_true, hr_pred, valid, elapsed) -> dict:
    valid = np.asarray(valid, dtype=bool)
    err = np.asarray(hr_pred, np.float64) - np.asarray(hr_true, np.float64)
    late = valid & (np.asarray(elapsed, dtype=np.float64) >= 120.0)
    w = per_workout_mae(hr_true, hr_pred, valid)
    w = w[~np.isnan(w)]

    def mean(x: np.ndarray) -> float:
        return float(x.mean()) if x.size else float("nan")

    return {
        "mae": mean(np.abs(err[valid])),
        "rmse": float(np.sqrt(mean(err[valid] ** 2))),
        "mae_after_2min": mean(np.abs(err[late])),
        "workout_mae_mean": mean(w),
        "workout_mae_median": float(np.median(w)) if w.size else float("nan"),
        "bias": mean(err[valid]),
        "n_workouts": int(w.size),
        "n_steps": int(valid.sum()),
    }


# --- the package's path: per-row sums of one chunk, then the summary ---------------------


def metrics(y, p, valid, elapsed=None) -> dict:
    elapsed = np.zeros(np.shape(y)) if elapsed is None else elapsed
    return summarize_sums(row_sums(y, p, valid, elapsed))


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
    m = metrics(y, p, valid, elapsed)
    assert m["mae"] == pytest.approx(np.mean(np.abs(e)), rel=1e-12)
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean(e**2)), rel=1e-12)
    assert m["bias"] == pytest.approx(np.mean(e), rel=1e-12)


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
    s = metrics(y, p, valid, elapsed)
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
    y, p, valid, elapsed = arrays
    w = row_sums(y, p, valid, elapsed).workout_mae()
    assert np.isnan(w[3])
    assert w[0] == pytest.approx(np.mean(np.abs(p[0] - y[0])[valid[0]]))


def test_invalid_steps_are_ignored(arrays):
    y, p, valid, elapsed = arrays
    p2 = p.copy()
    p2[~valid] = 1e6  # garbage where the mask is off must not move any metric
    assert metrics(y, p2, valid, elapsed) == metrics(y, p, valid, elapsed)


def test_rmse_is_global_not_mean_of_batch_rmses():
    # batch 1: two steps off by 1 BPM; batch 2: one step off by 10 BPM
    y = np.zeros((3, 2))
    p = np.array([[1.0, 1.0], [10.0, 0.0], [0.0, 0.0]])
    valid = np.array([[True, True], [True, False], [False, False]])
    batch_rmses = [
        metrics(y[:1], p[:1], valid[:1])["rmse"],
        metrics(y[1:], p[1:], valid[1:])["rmse"],
    ]
    assert batch_rmses == pytest.approx([1.0, 10.0])
    parts = [row_sums(y[:1], p[:1], valid[:1], y[:1]), row_sums(y[1:], p[1:], valid[1:], y[1:])]
    global_rmse = summarize_sums(RowSums.concat(parts))["rmse"]
    assert global_rmse == pytest.approx(np.sqrt(102 / 3))
    assert abs(global_rmse - np.mean(batch_rmses)) > 0.1


def test_rmse_at_least_mae_random():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.normal(size=(4, 9))
        p = rng.normal(size=(4, 9)) * rng.uniform(0.1, 10)
        v = rng.random((4, 9)) > 0.5
        if v.any():
            m = metrics(y, p, v)
            assert m["rmse"] >= m["mae"] - 1e-12


def test_empty_and_shape_errors():
    z = np.zeros((2, 3))
    s = metrics(z, z, np.zeros((2, 3), bool), z)
    assert s["n_steps"] == 0 and s["n_workouts"] == 0 and np.isnan(s["mae"])
    with pytest.raises(ValueError, match="shape"):
        row_sums(z, np.zeros((2, 4)), np.ones((2, 3), bool), z)


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
