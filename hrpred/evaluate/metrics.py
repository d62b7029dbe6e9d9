"""Masked regression metrics for HR curves.

All metrics are computed over the valid steps of every workout at once (micro
average): RMSE is the square root of the mean squared error over all valid steps,
never a mean of per-batch RMSEs. Arrays are [N, T] (workouts x steps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

AFTER_S = 120.0  # `mae_after_2min` ignores the first two minutes (HR still rising)


@dataclass
class RowSums:
    """Per-workout error sums, from which every reported metric of any set of rows follows.

    Sums add across chunks of rows, so a split can be scored chunk by chunk in bounded memory;
    each row's sums are one reduction per row (the same per-workout values as a whole array).
    """

    n: np.ndarray  # valid steps per row (int64)
    n_late: np.ndarray  # valid steps with elapsed >= after_s
    abs_sum: np.ndarray  # sum |pred - true| over valid steps (float64)
    sq_sum: np.ndarray  # sum (pred - true)^2
    err_sum: np.ndarray  # sum (pred - true)
    late_abs_sum: np.ndarray  # sum |pred - true| over the late valid steps

    @staticmethod
    def concat(parts: Sequence[RowSums]) -> RowSums:
        """Rows of several chunks, in order."""
        names = [f.name for f in fields(RowSums)]
        if not parts:
            return RowSums(
                *(np.zeros(0, np.int64 if k.startswith("n") else np.float64) for k in names)
            )
        return RowSums(*(np.concatenate([getattr(p, k) for p in parts]) for k in names))

    def take(self, sel: np.ndarray) -> RowSums:
        """The rows selected by a boolean mask or an index array."""
        return RowSums(*(getattr(self, f.name)[sel] for f in fields(RowSums)))

    def workout_mae(self) -> np.ndarray:
        """Per-row MAE (NaN where a row has no valid step)."""
        out = np.full(len(self.n), np.nan)
        has = self.n > 0
        out[has] = self.abs_sum[has] / self.n[has]
        return out


def row_sums(
    hr_true: np.ndarray,
    hr_pred: np.ndarray,
    valid: np.ndarray,
    elapsed: np.ndarray,
    after_s: float = AFTER_S,
) -> RowSums:
    """Error sums of each row of [n, T] arrays (one chunk of a split)."""
    hr_true = np.asarray(hr_true, dtype=np.float64)
    hr_pred = np.asarray(hr_pred, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    if hr_true.shape != hr_pred.shape or hr_true.shape != valid.shape:
        raise ValueError(
            f"shape mismatch: hr_true {hr_true.shape}, hr_pred {hr_pred.shape}, valid {valid.shape}"
        )
    late = valid & (np.asarray(elapsed, dtype=np.float64) >= after_s)
    err = hr_pred - hr_true
    abs_err = np.abs(err)
    return RowSums(
        n=valid.sum(axis=1).astype(np.int64),
        n_late=late.sum(axis=1).astype(np.int64),
        abs_sum=np.where(valid, abs_err, 0.0).sum(axis=1),
        sq_sum=np.where(valid, err**2, 0.0).sum(axis=1),
        err_sum=np.where(valid, err, 0.0).sum(axis=1),
        late_abs_sum=np.where(late, abs_err, 0.0).sum(axis=1),
    )


def _ratio(num: float, den: int) -> float:
    return float(num / den) if den else float("nan")


def summarize_sums(s: RowSums) -> dict[str, float | int]:
    """Every reported metric of a set of rows, from their sums.

    Keys: mae, rmse (global: sqrt of the mean squared error over all valid steps),
    mae_after_2min (steps with elapsed >= AFTER_S), workout_mae_mean, workout_mae_median (over
    workouts with at least one valid step), bias (pred - true), n_workouts (workouts with a
    valid step), n_steps (valid steps).
    """
    n = int(s.n.sum())
    wmae = s.workout_mae()
    wmae = wmae[~np.isnan(wmae)]
    return {
        "mae": _ratio(s.abs_sum.sum(), n),
        "rmse": float(np.sqrt(s.sq_sum.sum() / n)) if n else float("nan"),
        "mae_after_2min": _ratio(s.late_abs_sum.sum(), int(s.n_late.sum())),
        "workout_mae_mean": float(wmae.mean()) if wmae.size else float("nan"),
        "workout_mae_median": float(np.median(wmae)) if wmae.size else float("nan"),
        "bias": _ratio(s.err_sum.sum(), n),
        "n_workouts": int(wmae.size),
        "n_steps": n,
    }
