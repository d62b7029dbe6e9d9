"""Split methods (user-disjoint, order independence, chronological) and the train-only scaler."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from hrpred.params import ParamError
from hrpred.split.assign import (
    DROPPED,
    assign,
    assign_users,
    chrono_counts,
    fit_scaler,
    split_counts,
    user_hash,
)
from hrpred.split.config import SplitConfig


def make_index(n_users: int = 60, seed: int = 0, windows: bool = False) -> pd.DataFrame:
    """Feature-row index: long-tailed workouts per user, some workouts split into 2 rows."""
    rng = np.random.default_rng(seed)
    recs = []
    wid = 0
    for u in range(n_users):
        uid = 1000 + 37 * u
        for _ in range(int(rng.zipf(1.6)) % 40 + 1):
            start = int(1.4e9 + rng.integers(0, 10**8))
            for _ in range(1 + (windows and rng.random() < 0.3)):
                recs.append({"workout_id": wid, "user_id": uid, "start_time": start,
                             "n_valid": int(rng.integers(0, 50))})  # fmt: skip
            wid += 1
    idx = pd.DataFrame(recs)
    idx.insert(0, "row", np.arange(len(idx)))
    return idx


def shuffled(idx: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The same workouts in another file order (row numbers follow the new order)."""
    out = idx.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    out["row"] = np.arange(len(out))
    return out


@pytest.fixture
def split_cfg(config) -> SplitConfig:
    """The real split config (tests change one field with `replace`)."""
    return config(SplitConfig, "split")


def by_workout(table: pd.DataFrame) -> dict[int, str]:
    return dict(zip(table["workout_id"], table["split"], strict=True))


@pytest.mark.parametrize("stratify", [True, False])
@pytest.mark.parametrize("windows", [True, False])
def test_user_split_is_disjoint_and_order_independent(
    stratify: bool, windows: bool, split_cfg: SplitConfig
) -> None:
    idx = make_index(windows=windows)
    table = assign(idx, replace(split_cfg, method="user", seed=42, stratify=stratify))
    assert table["row"].tolist() == idx["row"].tolist()
    assert set(table["split"]) == {"train", "val", "test"}
    assert table.groupby("user_id")["split"].nunique().max() == 1  # no user in two splits
    assert table.groupby("workout_id")["split"].nunique().max() == 1
    for s in (1, 2):
        other = assign(
            shuffled(idx, s), replace(split_cfg, method="user", seed=42, stratify=stratify)
        )
        assert by_workout(other) == by_workout(table)


def test_user_split_seed_changes_assignment_and_fractions_hold(split_cfg: SplitConfig) -> None:
    idx = make_index(n_users=200)
    a = assign(idx, replace(split_cfg, method="user", seed=1, stratify=True))
    b = assign(idx, replace(split_cfg, method="user", seed=2, stratify=True))
    assert by_workout(a) != by_workout(b)
    users = a.drop_duplicates("user_id")["split"].value_counts()
    want = [round(200 * f) for f in split_cfg.fractions]  # params.yaml's fractions, dealt exactly
    assert [users["train"], users["val"], users["test"]] == want


def test_stratified_deal_spreads_heavy_users() -> None:
    per_user = {u: (1 if u < 70 else 40) for u in range(100)}  # 30 heavy users
    split = assign_users(per_user, [0.7, 0.15, 0.15], seed=3, stratify=True)
    heavy = pd.Series([split[u] for u in range(70, 100)]).value_counts()
    assert heavy["train"] == 21 and heavy["val"] >= 4 and heavy["test"] >= 4


def test_unstratified_user_split_follows_hash() -> None:
    per_user = {u: 1 for u in range(50)}
    split = assign_users(per_user, [0.7, 0.15, 0.15], seed=9, stratify=False)
    for u, s in split.items():
        h = user_hash(u, 9)
        assert s == ("train" if h < 0.7 else "val" if h < 0.85 else "test")


def test_chronological_puts_later_workouts_in_val_test(split_cfg: SplitConfig) -> None:
    chrono = replace(split_cfg, method="chronological", chrono_fractions=(0.8, 0.1, 0.1),
                     min_workouts=5, chrono_drop_first=False)  # fmt: skip
    idx = make_index(n_users=40, windows=True)
    table = assign(idx, chrono)
    merged = table.merge(idx[["row", "start_time"]], on="row")
    per_user = idx.drop_duplicates("workout_id").groupby("user_id").size()
    for uid, grp in merged.groupby("user_id"):
        if per_user[uid] < 5:
            assert (grp["split"] == DROPPED).all()
            continue
        times = {s: grp.loc[grp["split"] == s, "start_time"] for s in ("train", "val", "test")}
        assert times["train"].max() <= times["val"].min() <= times["val"].max()
        assert times["val"].max() <= times["test"].min()
        counts = grp.drop_duplicates("workout_id")["split"].value_counts()
        assert (counts["train"], counts["val"], counts["test"]) == chrono_counts(
            per_user[uid], [0.8, 0.1, 0.1]
        )
    other = assign(shuffled(idx, 4), chrono)
    assert by_workout(other) == by_workout(table)
    counts = split_counts(table, idx)
    w = counts["workouts"]
    assert w["train"] + w["val"] + w["test"] + w["dropped"] == w["total"]
    assert w["dropped"] == int(per_user[per_user < 5].sum())


def test_chrono_counts() -> None:
    assert chrono_counts(10, [0.8, 0.1, 0.1]) == (8, 1, 1)
    assert chrono_counts(3, [0.8, 0.1, 0.1]) == (1, 1, 1)
    assert chrono_counts(25, [0.8, 0.1, 0.1]) == (19, 3, 3)
    with pytest.raises(ValueError):
        chrono_counts(2, [0.8, 0.1, 0.1])


def test_bad_params_rejected(split_cfg: SplitConfig) -> None:
    with pytest.raises(ParamError, match="fractions"):
        replace(split_cfg, fractions=(0.5, 0.2))
    with pytest.raises(ParamError, match="chrono_fractions"):
        replace(split_cfg, chrono_fractions=(0.5, 0.2, 0.2))
    with pytest.raises(ParamError, match="method"):
        replace(split_cfg, method="random")
    with pytest.raises(ParamError, match="min_workouts"):
        replace(split_cfg, min_workouts=0)


def blocks(x: np.ndarray, m: np.ndarray, size: int):
    for s in range(0, len(x), size):
        yield x[s : s + size], m[s : s + size]


def test_scaler_is_numpy_mean_std_over_train_valid_steps() -> None:
    rng = np.random.default_rng(0)
    n, t = 37, 20
    names = ["speed", "gender", "altitude"]
    x = rng.normal(size=(n, t, 3)).astype(np.float32)
    x[..., 2] = x[..., 2] * 30 + 1500  # large mean, small std: float64 accumulators matter
    x[..., 1] = rng.integers(0, 2, size=(n, 1))
    m = rng.random((n, t)) > 0.3
    train = rng.random(n) < 0.6
    scaler, degenerate = fit_scaler(blocks(x, m, 8), train, names, {"gender"})
    assert set(scaler) == {"speed", "altitude"} and not degenerate
    sel = x[train][m[train]].astype(np.float64)
    for j, name in ((0, "speed"), (2, "altitude")):
        assert scaler[name]["mean"] == pytest.approx(sel[:, j].mean(), rel=1e-12, abs=1e-12)
        assert scaler[name]["std"] == pytest.approx(sel[:, j].std(), rel=1e-10)
    # Val/test rows and masked steps of train rows never influence it.
    y = x.copy()
    y[~train] = 1e6
    y[train] = np.where(m[train][..., None], y[train], -1e6)
    again, _ = fit_scaler(blocks(y, m, 5), train, names, {"gender"})
    for name in scaler:
        assert again[name] == pytest.approx(scaler[name], rel=1e-12)
    with pytest.raises(ValueError):
        fit_scaler(blocks(x[:-1], m[:-1], 8), train, names, {"gender"})


def test_scaler_degenerate_feature_gets_unit_std() -> None:
    x = np.ones((4, 5, 1), dtype=np.float32)
    scaler, degenerate = fit_scaler(blocks(x, np.ones((4, 5), bool), 2), np.ones(4, bool),
                                    ["speed"], set())  # fmt: skip
    assert degenerate == ["speed"] and scaler["speed"] == {"mean": 1.0, "std": 1.0}


def test_chronological_drop_first_drops_each_users_earliest_workout(
    split_cfg: SplitConfig,
) -> None:
    chrono = replace(split_cfg, method="chronological", chrono_fractions=(0.8, 0.1, 0.1),
                     min_workouts=5, chrono_drop_first=False)  # fmt: skip
    idx = make_index()
    kept = assign(idx, chrono)
    table = assign(idx, replace(chrono, chrono_drop_first=True))
    merged = table.merge(idx[["row", "start_time"]], on="row")
    for uid, grp in merged.groupby("user_id"):
        if (kept.loc[kept["user_id"] == uid, "split"] == "dropped").all():
            assert (grp["split"] == "dropped").all()
            continue
        grp = grp.sort_values(["start_time", "workout_id"])
        assert grp["split"].iloc[0] == "dropped"
        rest = grp["split"].iloc[1:]
        assert "dropped" not in set(rest)
        n = len(rest)
        counts = rest.value_counts()
        expected = chrono_counts(n, [0.8, 0.1, 0.1])
        assert (counts.get("train", 0), counts.get("val", 0), counts.get("test", 0)) == expected
