"""Masked regression metrics for HR curves.

All metrics are computed over the valid steps of every workout at once (micro
average): RMSE is the square root of the mean squared error over all valid steps,
never a mean of per-batch RMSEs. Arrays are [N, T] (workouts x steps). `NoiseFloorSums`
adds up the simulator truth's noise floor the same way, chunk by chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

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


class NoiseFloorSums:
    """Sums for `noise_floor`, accumulated chunk by chunk from the simulator truth.

    Only rows whose workout id is in the truth with the same number of steps are used (clean
    keeps steps 1:1 for those).
    """

    NEED = frozenset({"workout_id", "hr_clean", "hr_physio"})
    KEYS = ("clean_physio", "target_clean", "target_physio", "model_physio", "model_target")

    def __init__(self, truth: pd.DataFrame) -> None:
        self.by_id = truth.drop_duplicates("workout_id").set_index("workout_id")
        self.matched = 0
        self.unmatched = 0
        self.n_steps = 0
        self.abs = dict.fromkeys(self.KEYS, 0.0)
        self.sq_target_physio = 0.0

    def add(
        self,
        index: pd.DataFrame,
        lengths: np.ndarray,
        target: np.ndarray,
        model: np.ndarray,
        valid: np.ndarray,
    ) -> None:
        """One chunk: `index` = its rows of index.parquet, arrays [n, T]."""
        n, t = valid.shape
        clean = np.full((n, t), np.nan)
        physio = np.full((n, t), np.nan)
        matched = np.zeros(n, dtype=bool)
        for i, (wid, length, offset, steps) in enumerate(
            zip(
                index["workout_id"].to_numpy(),
                lengths,
                index["offset"].to_numpy() if "offset" in index else np.zeros(n, dtype=int),
                index["workout_steps"].to_numpy() if "workout_steps" in index else np.full(n, -1),
                strict=True,
            )
        ):
            if wid not in self.by_id.index:
                continue
            hc = np.asarray(self.by_id.at[wid, "hr_clean"], dtype=np.float64)
            hp = np.asarray(self.by_id.at[wid, "hr_physio"], dtype=np.float64)
            if len(hc) != len(hp) or (steps >= 0 and len(hc) != steps) or offset + length > len(hc):
                continue
            clean[i, :length] = hc[offset : offset + length]
            physio[i, :length] = hp[offset : offset + length]
            matched[i] = True
        self.matched += int(matched.sum())
        self.unmatched += int((~matched).sum())
        v = valid & matched[:, None] & np.isfinite(clean) & np.isfinite(physio)
        y = np.asarray(target, dtype=np.float64)[v]
        c, p = clean[v], physio[v]
        m = np.asarray(model, dtype=np.float64)[v]
        self.n_steps += int(v.sum())
        for key, (a, b) in zip(self.KEYS, ((p, c), (c, y), (p, y), (m, p), (m, y)), strict=True):
            self.abs[key] += float(np.abs(a - b).sum())
        self.sq_target_physio += float(((p - y) ** 2).sum())

    def result(self) -> dict[str, float | int] | None:
        """The noise-floor entry of the report; None when no row matched (e.g. real data)."""
        if not self.matched:
            return None
        n = self.n_steps

        def mean(x: float) -> float:
            return x / n if n else float("nan")

        return {
            "n_workouts": self.matched,
            "n_unmatched": self.unmatched,
            "n_steps": n,
            "clean_vs_physio_mae": mean(self.abs["clean_physio"]),
            "target_vs_clean_mae": mean(self.abs["target_clean"]),
            "target_vs_physio_mae": mean(self.abs["target_physio"]),
            "target_vs_physio_rmse": float(np.sqrt(self.sq_target_physio / n))
            if n
            else float("nan"),
            "model_vs_physio_mae": mean(self.abs["model_physio"]),
            "model_mae_same_steps": mean(self.abs["model_target"]),
        }
