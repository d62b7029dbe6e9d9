"""The history context of a workout: its K most recent earlier workouts' summaries.

`build_context` turns the history table (data/split/history.parquet: `workout_id,
hist_workout_id, rank, days_before`, built from user_id + start_time only) and the summaries
of the history workouts into a `[N, K, C]` array + a `[N, K]` mask, most recent first. The
workout being predicted is never looked up, only the workouts listed as its history (which
started strictly before it), so its own HR and later workouts' HR cannot enter.

`allowed` restricts which workouts may serve as history (training passes its train workouts,
so val/test summaries never enter a training batch). A runner's own files use the same path:
`summaries_from_stats(ids, row_stats(...))` of the earlier runs and a one-workout history
table (`workout_id, hist_workout_id, rank, days_before`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hrpred.personal.summaries import SUMMARY_FEATURES, Summaries

CONTEXT_FEATURES = (*SUMMARY_FEATURES, "log_days_before")  # the C columns, in order


@dataclass(frozen=True)
class Context:
    """History contexts of N workouts (raw units; the model's checkpoint scales them)."""

    values: np.ndarray  # [N, K, C] float32, CONTEXT_FEATURES; 0 where mask is False
    mask: np.ndarray  # [N, K] bool, True on real history entries (a prefix of each row)

    @property
    def sizes(self) -> np.ndarray:
        """History entries per workout [N]."""
        return self.mask.sum(axis=1)


def empty_context(n: int, k_max: int) -> Context:
    """Cold start: no history for any of `n` workouts."""
    c = len(CONTEXT_FEATURES)
    return Context(np.zeros((n, k_max, c), np.float32), np.zeros((n, k_max), bool))


def build_context(
    workout_ids: np.ndarray,
    history: pd.DataFrame,
    summaries: Summaries,
    k_max: int,
    allowed: np.ndarray | None = None,
) -> Context:
    """Context of each id in `workout_ids` (repeats allowed: one line per row/window).

    Uses the K most recent history workouts that are summarised, valid, and (if given) in
    `allowed`; memory O(len(history) + N x K).
    """
    ids = np.asarray(workout_ids, dtype=np.int64)
    out = empty_context(len(ids), k_max)
    if k_max == 0 or len(ids) == 0 or len(history) == 0:
        return out
    uniq = np.unique(ids)
    h = history[history["workout_id"].isin(uniq)]
    if allowed is not None:
        h = h[h["hist_workout_id"].isin(np.asarray(allowed, dtype=np.int64))]
    pos = summaries.positions(h["hist_workout_id"].to_numpy())
    usable = pos >= 0
    usable[usable] = summaries.valid[pos[usable]]
    h = h.assign(pos=pos)[usable].sort_values(["workout_id", "rank"], kind="mergesort")
    slot = h.groupby("workout_id", sort=False).cumcount().to_numpy()
    h = h[slot < k_max]
    slot = slot[slot < k_max]
    owner = np.searchsorted(uniq, h["workout_id"].to_numpy(dtype=np.int64))
    vals = np.zeros((len(uniq), k_max, len(CONTEXT_FEATURES)), np.float32)
    mask = np.zeros((len(uniq), k_max), bool)
    vals[owner, slot, :-1] = summaries.values[h["pos"].to_numpy()]
    vals[owner, slot, -1] = np.log1p(h["days_before"].to_numpy(dtype=np.float64))
    mask[owner, slot] = True
    where = np.searchsorted(uniq, ids)
    return Context(vals[where], mask[where])
