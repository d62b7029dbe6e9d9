"""The offset personaliser: population prediction + the runner's recent mean residual.

For a workout w with history h_1..h_K (its K most recent earlier workouts, `rank <= k` in
data/split/history.parquet, `days_before` d_j), each history workout contributes its mean
residual r_j = mean(recorded - predicted) over its valid steps, with a per-workout weight
w_j = exp(-ln 2 * d_j / half_life_days) (per workout, not per step: a long workout is not
more informative about the runner's level than a short one). The offset is

    offset(w) = sum_j w_j r_j / (sum_j w_j + shrink)

i.e. the weighted mean residual shrunk by n_eff / (n_eff + shrink) with n_eff = sum_j w_j
(a prior worth `shrink` workouts at offset 0, the population). No history: offset 0.
History workouts without valid steps are skipped. It reads only the predictions and recorded
HR of *earlier* workouts, never w's own HR: honest by construction. It needs no training.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hrpred.personal.config import OffsetConfig


def workout_offsets(
    cfg: OffsetConfig,
    history: pd.DataFrame,
    resid_sum: pd.Series,
    resid_n: pd.Series,
    workout_ids: np.ndarray,
) -> np.ndarray:
    """Offset (BPM, float64) of each of `workout_ids` (see the module doc).

    `history`: rows of the history table (workout_id, hist_workout_id, rank, days_before);
    `resid_sum`/`resid_n`: per history workout id (index), sum of recorded - predicted over its
    valid steps and their number; ids missing there count as having no valid step.
    """
    h = history[history["rank"] <= cfg.k]
    hid = h["hist_workout_id"].to_numpy()
    n = resid_n.reindex(hid).fillna(0).to_numpy(dtype=np.float64)
    s = resid_sum.reindex(hid).fillna(0.0).to_numpy(dtype=np.float64)
    ok = n > 0
    w = np.exp(-np.log(2.0) * h["days_before"].to_numpy(dtype=np.float64) / cfg.half_life_days)
    w = np.where(ok, w, 0.0)
    r = np.divide(s, n, out=np.zeros_like(s), where=ok)
    frame = pd.DataFrame({"wid": h["workout_id"].to_numpy(), "w": w, "wr": w * r})
    g = frame.groupby("wid", sort=False)[["w", "wr"]].sum()
    g = g.reindex(np.asarray(workout_ids)).fillna(0.0)
    return (g["wr"] / (g["w"] + cfg.shrink)).fillna(0.0).to_numpy(dtype=np.float64)
