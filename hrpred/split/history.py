"""Each workout's history: the same user's workouts that started strictly before it.

Built from `user_id` and `start_time` only (never HR), so reading a history cannot leak the
target of the workout it serves. Which earlier workouts are visible depends on the split:

- `user` method (default): a user's workouts all sit in one split, so the history of a test
  workout is the user's own earlier test workouts, a train workout's history is train-only.
- `chronological`: every earlier workout of the user that is not `dropped` (for a test workout
  that includes the user's train and val workouts, which all started before it).

One line per (workout, earlier workout) pair, most recent first, at most `max_history` per
workout: `workout_id, hist_workout_id, rank` (1 = the most recent earlier workout),
`days_before` (start-time difference in days, > 0). Workouts without a valid start time
(-1 in the index) have no history and are nobody's history.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def build_history(assignment: pd.DataFrame, index: pd.DataFrame, max_history: int) -> pd.DataFrame:
    """The history table of every assigned workout (see the module doc).

    `assignment` has row, workout_id, split; `index` (data/features) has row, user_id,
    start_time. Memory is O(workouts x max_history).
    """
    if max_history < 0:
        raise ValueError(f"max_history must be >= 0, got {max_history}")
    rows = assignment[["row", "workout_id", "split"]].merge(
        index[["row", "user_id", "start_time"]], on="row", how="left", validate="one_to_one"
    )
    w = rows.drop_duplicates("workout_id")  # a workout cut into windows: one entry
    w = w[(w["split"] != "dropped") & (w["start_time"] >= 0)]
    w = w.sort_values(["user_id", "start_time", "workout_id"], kind="mergesort")
    users = w["user_id"].to_numpy()
    starts = w["start_time"].to_numpy(dtype=np.int64)
    ids = w["workout_id"].to_numpy(dtype=np.int64)
    out_w: list[np.ndarray] = []
    out_h: list[np.ndarray] = []
    out_r: list[np.ndarray] = []
    out_d: list[np.ndarray] = []
    bounds = np.flatnonzero(np.r_[True, users[1:] != users[:-1], True])
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        t = starts[a:b]
        # first position of each workout's own start time: earlier = strictly before it
        first = np.searchsorted(t, t, side="left")
        for i in range(b - a):
            k = min(int(first[i]), max_history)
            if k == 0:
                continue
            hist = np.arange(first[i] - 1, first[i] - 1 - k, -1)  # most recent first
            out_w.append(np.full(k, ids[a + i]))
            out_h.append(ids[a + hist])
            out_r.append(np.arange(1, k + 1))
            out_d.append((t[i] - t[hist]) / 86400.0)
    if not out_w:
        return pd.DataFrame(
            {
                "workout_id": np.zeros(0, np.int64),
                "hist_workout_id": np.zeros(0, np.int64),
                "rank": np.zeros(0, np.int32),
                "days_before": np.zeros(0, np.float64),
            }
        )
    return pd.DataFrame(
        {
            "workout_id": np.concatenate(out_w).astype(np.int64),
            "hist_workout_id": np.concatenate(out_h).astype(np.int64),
            "rank": np.concatenate(out_r).astype(np.int32),
            "days_before": np.concatenate(out_d).astype(np.float64),
        }
    )


BUCKETS = ("0", "1-2", "3-9", "10+")  # history-size buckets of the reports
_BUCKET_EDGES = (1, 3, 10)


def history_buckets(sizes: np.ndarray) -> np.ndarray:
    """The `BUCKETS` label of each history size."""
    return np.asarray(BUCKETS, dtype=object)[np.searchsorted(_BUCKET_EDGES, sizes, side="right")]


def bucket_counts(sizes: np.ndarray) -> dict[str, int]:
    """Workouts per history-size bucket (every bucket listed, 0 when empty)."""
    labels = history_buckets(np.asarray(sizes, dtype=np.int64))
    return {b: int((labels == b).sum()) for b in BUCKETS}


def history_sizes(history: pd.DataFrame, workout_ids: np.ndarray) -> np.ndarray:
    """Number of earlier workouts (capped at max_history) of each of `workout_ids`."""
    counts = history.groupby("workout_id").size()
    return counts.reindex(workout_ids, fill_value=0).to_numpy(dtype=np.int64)
