"""The history-conditioned model (issue 13, item 3): honesty, cold/warm start, training.

Trees come from conftest's `make_tree` (with data/split/history.parquet), with a personal HR
level added per user so history has something to teach. Configs are the real params.yaml's,
changed field by field.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hrpred import store
from hrpred.model import HistoryHRModel, load_checkpoint, predict, supports_history
from hrpred.personal.config import LearnedConfig
from hrpred.personal.context import CONTEXT_FEATURES, build_context
from hrpred.personal.summaries import (
    SUMMARY_FEATURES,
    compute_summaries,
    row_stats,
    summaries_from_stats,
)
from hrpred.train.config import TrainConfig, TrainPaths
from hrpred.train.data import load_train_data
from hrpred.train.history_data import load_history_data
from hrpred.train.loop import fit

N, T = 160, 30  # 40 users x 4 workouts (one per day), user-disjoint train/val/test
TINY = {
    "hidden": 16,
    "layers": 1,
    "batch_size": 8,
    "eval_batch_size": 64,
    "lr": 3e-3,
    "patience": 20,
    "lr_patience": 5,
    "max_epochs": 25,
    "device": "cpu",
    "num_threads": 1,
    "val_threads": 0,
}


def add_user_levels(root: Path, seed: int = 3) -> np.ndarray:
    """Shift each user's recorded HR by a personal level (BPM, in -20..20)."""
    folder = root / "data" / "features"
    users = store.open_features(folder).index["user_id"].to_numpy()
    level = np.random.default_rng(seed).uniform(-20, 20, size=users.max() + 1)
    target = np.load(folder / "target.npy") + level[users][:, None].astype(np.float32)
    np.save(folder / "target.npy", target)
    return level


def perturb_hr(root: Path, rows: np.ndarray, bpm: float) -> None:
    path = root / "data" / "features" / "target.npy"
    target = np.load(path)
    target[rows] += np.float32(bpm)
    np.save(path, target)


def personal_predict(root: Path, model, ckpt, rows: np.ndarray) -> np.ndarray:
    """The predictor path (summaries -> context -> model) for `rows`, history on."""
    feat = store.open_features(root / "data" / "features")
    history = store.open_history(root / "data" / "split")
    ids = feat.index["workout_id"].to_numpy()[rows]
    ctx = build_context(ids, history, compute_summaries(root / "data" / "features"), 10)
    return predict(model, ckpt, feat.features[rows], context=(ctx.values, ctx.mask))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, config_module) -> dict:
    """One tiny history model per design, trained on a tree with user levels."""
    from conftest import write_history_table
    from fake_eval_data import write_data

    root = tmp_path_factory.mktemp("levels")
    arrays = write_data(root, n=N, t=T, seed=1)
    write_history_table(root)
    add_user_levels(root)
    cfg = replace(config_module(TrainConfig, "train"), **TINY)
    learned = config_module(LearnedConfig, "personal.learned")
    data = load_train_data(root / "data" / "features", root / "data" / "split")
    out = {"root": root, "arrays": arrays, "cfg": cfg, "learned": learned, "runs": {}}
    for design in ("physio", "condition"):
        pl = replace(learned, design=design)
        hd = load_history_data(data, root / "data" / "features", root / "data" / "split", pl)
        paths = TrainPaths(root / design / "model.pt", root / design / "ckpt.pt", None)
        fit(cfg, data, paths, history=hd)
        out["runs"][design] = load_checkpoint(paths.model)
    return out


@pytest.fixture(scope="module")
def config_module(params):
    from conftest import PARAMS

    from hrpred.params import load_config

    return lambda cls, section: load_config(cls, section, PARAMS, data=params)


def _test_rows(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Test rows and their number of earlier workouts."""
    split = store.open_split(root / "data" / "split")
    history = store.open_history(root / "data" / "split")
    rows = split.rows["test"]
    ids = store.open_features(root / "data" / "features").index["workout_id"].to_numpy()[rows]
    sizes = history.groupby("workout_id").size().reindex(ids, fill_value=0).to_numpy()
    return rows, sizes


@pytest.mark.parametrize("design", ["physio", "condition"])
def test_warm_start_beats_cold_start_on_users_with_distinct_levels(trained, design) -> None:
    root = trained["root"]
    model, ckpt = trained["runs"][design]
    assert supports_history(ckpt) and isinstance(model, HistoryHRModel)
    assert ckpt["history"]["k_max"] == trained["learned"].k_max
    assert ckpt["history"]["summary_features"] == list(SUMMARY_FEATURES)
    assert ckpt["history"]["context_features"] == list(CONTEXT_FEATURES)
    rows, sizes = _test_rows(root)
    feat = store.open_features(root / "data" / "features")
    y, m = feat.target[rows], feat.mask[rows]
    cold = predict(model, ckpt, feat.features[rows])
    warm = personal_predict(root, model, ckpt, rows)
    sel = (sizes >= 1)[:, None] & m
    cold_mae = float(np.abs(cold - y)[sel].mean())
    warm_mae = float(np.abs(warm - y)[sel].mean())
    assert warm_mae < 0.8 * cold_mae, (cold_mae, warm_mae)
    # no history: the personalised path is the cold path
    none = (sizes == 0)[:, None]
    assert np.array_equal(np.where(none, warm, 0), np.where(none, cold, 0))


def test_prediction_ignores_own_and_later_hr_but_reads_earlier_hr(trained, tmp_path) -> None:
    model, ckpt = trained["runs"]["physio"]
    root = tmp_path / "tree"
    shutil.copytree(trained["root"] / "data", root / "data")
    rows, sizes = _test_rows(root)
    feat = store.open_features(root / "data" / "features")
    users = feat.index["user_id"].to_numpy()
    start = feat.index["start_time"].to_numpy()
    w = int(rows[np.flatnonzero(sizes == 2)[0]])  # a workout with 2 earlier, 1 later workout
    same = np.flatnonzero(users == users[w])
    own_and_later = same[start[same] >= start[w]]
    earlier = same[start[same] < start[w]]
    assert len(own_and_later) == 2 and len(earlier) == 2
    before = personal_predict(root, model, ckpt, np.array([w]))
    perturb_hr(root, own_and_later, 35.0)
    after = personal_predict(root, model, ckpt, np.array([w]))
    assert before.tobytes() == after.tobytes()
    perturb_hr(root, earlier[-1:], 35.0)
    changed = personal_predict(root, model, ckpt, np.array([w]))
    assert np.abs(changed - before).max() > 0.1


def test_training_contexts_never_read_val_or_test_hr(trained, tmp_path) -> None:
    root = tmp_path / "tree"
    shutil.copytree(trained["root"] / "data", root / "data")
    fdir, sdir = root / "data" / "features", root / "data" / "split"
    data = load_train_data(fdir, sdir)
    a = load_history_data(data, fdir, sdir, trained["learned"])
    split = store.open_split(sdir)
    perturb_hr(root, np.r_[split.rows["val"], split.rows["test"]], -40.0)
    b = load_history_data(load_train_data(fdir, sdir), fdir, sdir, trained["learned"])
    assert a.train.values.tobytes() == b.train.values.tobytes()
    assert np.array_equal(a.train.mask, b.train.mask) and a.train.mask.any()
    assert a.meta["scaler"] == b.meta["scaler"]
    assert a.val.values.tobytes() != b.val.values.tobytes()  # val reads its own history


def test_history_training_is_deterministic(trained, tmp_path) -> None:
    root, cfg = trained["root"], replace(trained["cfg"], max_epochs=2)
    fdir, sdir = root / "data" / "features", root / "data" / "split"
    data = load_train_data(fdir, sdir)
    hd = load_history_data(data, fdir, sdir, trained["learned"])
    blobs = []
    for name in ("a", "b"):
        paths = TrainPaths(tmp_path / name / "model.pt", tmp_path / name / "ckpt.pt", None)
        fit(cfg, data, paths, history=hd)
        blobs.append(paths.model.read_bytes())
    assert blobs[0] == blobs[1]


def test_cold_context_equals_no_context(trained) -> None:
    model, ckpt = trained["runs"]["condition"]
    x = store.open_features(trained["root"] / "data" / "features").features[:5]
    ctx = build_context(np.arange(5), store.open_history(trained["root"] / "data" / "split"),
                        compute_summaries(trained["root"] / "data" / "features"), 10)  # fmt: skip
    assert not ctx.mask.any()  # ids 0..4 are not workouts: no history
    assert np.array_equal(predict(model, ckpt, x), predict(model, ckpt, x, context=(ctx.values,
                                                                                    ctx.mask)))  # fmt: skip


def test_summaries_by_hand_and_windows_add_up() -> None:
    rng = np.random.default_rng(0)
    speed = rng.uniform(8, 14, size=(2, 40))
    hr = 60 + 7 * speed + rng.normal(0, 1, size=(2, 40))
    alt = np.cumsum(np.abs(rng.normal(0, 1, size=(2, 40))), axis=1)
    x = np.stack([speed, alt], -1).astype(np.float32)
    mask = np.ones((2, 40), bool)
    whole = summaries_from_stats(np.array([7, 7]), row_stats(x, hr, mask, ["speed", "altitude"]))
    s = dict(zip(SUMMARY_FEATURES, whole.values[0], strict=True))
    both = hr.ravel().astype(np.float32)
    assert s["hr_mean"] == pytest.approx(both.mean(), rel=1e-5)
    assert s["hr_speed_slope"] == pytest.approx(7.0, abs=0.3)
    assert s["frac_valid"] == pytest.approx(1.0)
    assert whole.valid[0] and list(whole.workout_ids) == [7]


def test_context_from_a_runners_own_files_keeps_recent_valid_runs() -> None:
    """The `hrpred predict --history` path: a one-workout history table over summarised runs."""
    stats = np.zeros((3, 8))
    stats[:, 0] = [50, 50, 2]  # the third run has too few valid HR steps
    stats[:, 1] = [50 * 150, 50 * 160, 2 * 170]
    stats[:, 7] = 50
    s = summaries_from_stats(np.array([1, 2, 3]), stats)
    table = pd.DataFrame(
        {"workout_id": 0, "hist_workout_id": [3, 2, 1], "rank": [1, 2, 3],
         "days_before": [1.0, 2.0, 30.0]}
    )  # fmt: skip
    ctx = build_context(np.array([0]), table, s, k_max=4)
    assert ctx.mask[0].tolist() == [True, True, False, False]
    assert ctx.values[0, 0, 0] == pytest.approx(160) and ctx.values[0, 1, 0] == pytest.approx(150)
    assert ctx.values[0, 0, -1] == pytest.approx(np.log1p(2.0))
    assert build_context(np.array([0]), table, s, k_max=1).mask.tolist() == [[True]]
