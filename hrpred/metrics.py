"""Masked regression metrics for HR curves.

All metrics are computed over the valid steps of every workout at once (micro
average): RMSE is the square root of the mean squared error over all valid steps,
never a mean of per-batch RMSEs. Arrays are [N, T] (workouts x steps).
"""

from __future__ import annotations

import numpy as np

AFTER_S = 120.0  # `mae_after_2min` ignores the first two minutes (HR still rising)


def _errors(hr_true: np.ndarray, hr_pred: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Prediction minus truth on valid steps, float64, flattened."""
    hr_true = np.asarray(hr_true, dtype=np.float64)
    hr_pred = np.asarray(hr_pred, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    if hr_true.shape != hr_pred.shape or hr_true.shape != valid.shape:
        raise ValueError(
            f"shape mismatch: hr_true {hr_true.shape}, hr_pred {hr_pred.shape}, valid {valid.shape}"
        )
    return (hr_pred - hr_true)[valid]


def mae(hr_true: np.ndarray, hr_pred: np.ndarray, valid: np.ndarray) -> float:
    """Mean absolute error over all valid steps (NaN when there are none)."""
    err = _errors(hr_true, hr_pred, valid)
    return float(np.abs(err).mean()) if err.size else float("nan")


def rmse(hr_true: np.ndarray, hr_pred: np.ndarray, valid: np.ndarray) -> float:
    """Global RMSE: sqrt of the mean squared error over all valid steps."""
    err = _errors(hr_true, hr_pred, valid)
    return float(np.sqrt(np.mean(err**2))) if err.size else float("nan")


def bias(hr_true: np.ndarray, hr_pred: np.ndarray, valid: np.ndarray) -> float:
    """Mean signed error (prediction - truth); positive means over-prediction."""
    err = _errors(hr_true, hr_pred, valid)
    return float(err.mean()) if err.size else float("nan")


def per_workout_mae(hr_true: np.ndarray, hr_pred: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """MAE of each workout (row) over its valid steps; NaN for rows with no valid step."""
    hr_true = np.asarray(hr_true, dtype=np.float64)
    hr_pred = np.asarray(hr_pred, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    abs_err = np.where(valid, np.abs(hr_pred - hr_true), 0.0)
    n = valid.sum(axis=1)
    out = np.full(valid.shape[0], np.nan)
    has = n > 0
    out[has] = abs_err[has].sum(axis=1) / n[has]
    return out


def summarize(
    hr_true: np.ndarray,
    hr_pred: np.ndarray,
    valid: np.ndarray,
    elapsed: np.ndarray,
    after_s: float = AFTER_S,
) -> dict[str, float | int]:
    """Every reported metric for one set of workouts.

    Keys: mae, rmse, mae_after_2min (steps with elapsed >= after_s), workout_mae_mean,
    workout_mae_median (over workouts with at least one valid step), bias (pred - true),
    n_workouts (workouts with a valid step), n_steps (valid steps).
    """
    valid = np.asarray(valid, dtype=bool)
    late = valid & (np.asarray(elapsed, dtype=np.float64) >= after_s)
    wmae = per_workout_mae(hr_true, hr_pred, valid)
    wmae = wmae[~np.isnan(wmae)]
    return {
        "mae": mae(hr_true, hr_pred, valid),
        "rmse": rmse(hr_true, hr_pred, valid),
        "mae_after_2min": mae(hr_true, hr_pred, late),
        "workout_mae_mean": float(wmae.mean()) if wmae.size else float("nan"),
        "workout_mae_median": float(np.median(wmae)) if wmae.size else float("nan"),
        "bias": bias(hr_true, hr_pred, valid),
        "n_workouts": int(wmae.size),
        "n_steps": int(valid.sum()),
    }
