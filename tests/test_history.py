"""data/split/history.parquet: each workout's earlier workouts, from user_id + start_time only."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from hrpred import store
from hrpred.split.assign import assign
from hrpred.split.config import SplitConfig
from hrpred.split.history import BUCKETS, bucket_counts, build_history, history_sizes
from hrpred.split.pipeline import run_split


def index_frame(hr_shift: float = 0.0) -> pd.DataFrame:
    """Two users, one start-time tie; `mean_hr` is a target-derived column (must be ignored)."""
    day = 86400
    return pd.DataFrame(
        {
            "row": np.arange(7),
            "workout_id": [10, 11, 12, 13, 20, 21, 22],
            "user_id": [1, 1, 1, 1, 2, 2, 2],
            "start_time": [0, 2 * day, 2 * day, 5 * day, day, 3 * day, -1],
            "mean_hr": np.array([140.0, 150, 160, 170, 130, 135, 150]) + hr_shift,
        }
    )


def assignment_frame(splits: list[str]) -> pd.DataFrame:
    idx = index_frame()
    return pd.DataFrame(
        {"row": idx["row"], "workout_id": idx["workout_id"], "user_id": idx["user_id"],
         "split": splits}
    )  # fmt: skip


def pairs(h: pd.DataFrame, wid: int) -> list[tuple[int, int, float]]:
    sel = h[h["workout_id"] == wid].sort_values("rank")
    return list(zip(sel["hist_workout_id"], sel["rank"], sel["days_before"].round(6), strict=True))


def test_history_is_earlier_workouts_most_recent_first_and_ties_are_not_history() -> None:
    h = build_history(assignment_frame(["test"] * 7), index_frame(), max_history=50)
    assert pairs(h, 10) == []
    assert pairs(h, 11) == [(10, 1, 2.0)]  # 12 started at the same second: not history
    assert pairs(h, 12) == [(10, 1, 2.0)]
    assert pairs(h, 13) == [(12, 1, 3.0), (11, 2, 3.0), (10, 3, 5.0)]
    assert pairs(h, 21) == [(20, 1, 2.0)]
    assert pairs(h, 22) == []  # no valid start time: no history, nobody's history
    assert 22 not in set(h["hist_workout_id"])
    capped = build_history(assignment_frame(["test"] * 7), index_frame(), max_history=2)
    assert pairs(capped, 13) == [(12, 1, 3.0), (11, 2, 3.0)]


def test_history_does_not_read_hr() -> None:
    a = build_history(assignment_frame(["test"] * 7), index_frame(0.0), 50)
    b = build_history(assignment_frame(["test"] * 7), index_frame(37.5), 50)
    pd.testing.assert_frame_equal(a, b)


def test_user_vs_chronological_semantics() -> None:
    # user method: each user sits in one split, history is within it
    user = build_history(assignment_frame(["val"] * 4 + ["test"] * 3), index_frame(), 50)
    assert pairs(user, 13) == [(12, 1, 3.0), (11, 2, 3.0), (10, 3, 5.0)]
    # chronological: a test workout's history includes the user's earlier train/val workouts,
    # dropped workouts are nobody's history
    splits = ["train", "train", "val", "test", "dropped", "train", "test"]
    chrono = build_history(assignment_frame(splits), index_frame(), 50)
    assert pairs(chrono, 13) == [(12, 1, 3.0), (11, 2, 3.0), (10, 3, 5.0)]
    assert pairs(chrono, 21) == []  # 20 is dropped
    assert 20 not in set(chrono["workout_id"]) | set(chrono["hist_workout_id"])


def test_buckets() -> None:
    assert BUCKETS == ("0", "1-2", "3-9", "10+")
    assert bucket_counts(np.array([0, 1, 2, 3, 9, 10, 50])) == {
        "0": 1, "1-2": 2, "3-9": 2, "10+": 2
    }  # fmt: skip


def test_run_split_writes_history_independent_of_target(make_tree, tmp_path, config) -> None:
    cfg = replace(config(SplitConfig, "split"), fractions=(0.5, 0.25, 0.25))
    a = make_tree(tmp_path / "a")
    feats = tmp_path / "a" / "data" / "features"
    m1 = run_split(cfg, feats, tmp_path / "s1", tmp_path / "m1.json")
    h1 = (tmp_path / "s1" / "history.parquet").read_bytes()
    target = np.load(feats / "target.npy")
    np.save(feats / "target.npy", target + 25.0)  # another HR: same history, same bytes
    run_split(cfg, feats, tmp_path / "s2", tmp_path / "m2.json")
    assert (tmp_path / "s2" / "history.parquet").read_bytes() == h1
    h = store.open_history(tmp_path / "s1")
    table = assign(store.open_features(feats).index, cfg)
    sizes = history_sizes(h, a["ids"])
    assert (sizes > 0).any()
    stats = m1["history"]
    assert stats["max_history"] == cfg.max_history and stats["pairs"] == len(h)
    for s in ("train", "val", "test"):
        ids = table.loc[table["split"] == s, "workout_id"].to_numpy()
        assert stats[s]["workouts"] == bucket_counts(history_sizes(h, ids))
        # user method: history never crosses splits
        hist = h[h["workout_id"].isin(ids)]
        assert hist["hist_workout_id"].isin(ids).all()
