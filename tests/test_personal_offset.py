"""The offset personaliser: its formula, and honesty (only earlier workouts' HR is read)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from fake_eval_data import stand_in_predictor, write_data

from hrpred.evaluate.config import EvalConfig
from hrpred.evaluate.personal import personalise
from hrpred.evaluate.scoring import evaluate_all, fit_baselines
from hrpred.params import ParamError
from hrpred.personal.config import OffsetConfig
from hrpred.personal.offset import workout_offsets
from hrpred.store import open_dataset, open_history


def test_offset_formula(config) -> None:
    cfg = replace(config(OffsetConfig, "personal.offset"), k=2, shrink=1.0, half_life_days=10.0)
    history = pd.DataFrame(
        {
            "workout_id": [5, 5, 5, 6],
            "hist_workout_id": [3, 2, 1, 9],
            "rank": [1, 2, 3, 1],
            "days_before": [10.0, 20.0, 30.0, 1.0],
        }
    )
    s = pd.Series({1: 100.0, 2: 30.0, 3: 40.0, 9: 5.0})
    n = pd.Series({1: 10, 2: 10, 3: 20, 9: 0})  # 9 has no valid step: skipped
    got = workout_offsets(cfg, history, s, n, np.array([5, 6, 7]))
    w = np.array([0.5, 0.25])  # rank 3 is beyond k = 2
    r = np.array([40.0 / 20, 30.0 / 10])
    assert got[0] == pytest.approx((w * r).sum() / (w.sum() + 1.0))
    assert got[1] == 0.0 and got[2] == 0.0  # no usable history: the population prediction
    # the plain personaliser: no decay (huge half-life), shrink n / (n + 1)
    flat = replace(cfg, k=10, half_life_days=1e12)
    assert workout_offsets(flat, history, s, n, np.array([5]))[0] == pytest.approx(
        (10.0 + 3.0 + 2.0) / 3 * 3 / 4
    )


def test_bad_offset_params_rejected(config) -> None:
    cfg = config(OffsetConfig, "personal.offset")
    for change in ({"k": -1}, {"shrink": -0.5}, {"half_life_days": 0.0}):
        with pytest.raises(ParamError, match="personal.offset"):
            replace(cfg, **change)


def _personal(root, config):
    ds = open_dataset(root / "data" / "features", root / "data" / "split")
    cfg = replace(config(EvalConfig, "evaluate"), baseline_fit_rows=0)
    predict = stand_in_predictor(root, ds.data.names)
    baselines = fit_baselines(ds, cfg)
    results = evaluate_all(ds, predict, baselines, cfg)
    ocfg = config(OffsetConfig, "personal.offset")
    res = personalise(ds, results, open_history(root / "data" / "split"), predict, baselines,
                      cfg, ocfg)  # fmt: skip
    return ds, results["test"].rows, res


@pytest.fixture(scope="module")
def honest(tmp_path_factory, config):
    root = tmp_path_factory.mktemp("honest")
    a = write_data(root)
    ds, rows, res = _personal(root, config)
    return root, a, ds, rows, res


def _perturb(root, rows, shift) -> None:
    path = root / "data" / "features" / "target.npy"
    y = np.load(path)
    y[rows] += shift
    np.save(path, y)


def test_personal_prediction_reads_only_earlier_workouts(honest, tmp_path, config) -> None:
    _, a, ds, rows, res = honest
    users = a["users"]
    test_users = sorted(set(users[rows]))
    # each fake user has 4 workouts, one a day: take each test user's 3rd (2 earlier, 1 later)
    w_rows = [int(np.flatnonzero(users == u)[2]) for u in test_users]
    pos = [int(np.searchsorted(rows, r)) for r in w_rows]
    assert all(res.sizes[p] == 2 for p in pos) and all(res.offsets["model"][p] != 0 for p in pos)
    # perturb the HR of w and of every later workout of its user: w's prediction is unchanged
    later = [r for u in test_users for r in np.flatnonzero(users == u)[2:]]
    write_data(tmp_path)
    _perturb(tmp_path, later, np.linspace(-30, 30, a["target"].shape[1]).astype(np.float32))
    _, _, res2 = _personal(tmp_path, config)
    for p in pos:
        assert res2.model[p].tobytes() == res.model[p].tobytes()
        for name in res.offsets:
            assert res2.offsets[name][p] == res.offsets[name][p]
    # perturb one earlier workout: the prediction changes
    earlier = [int(np.flatnonzero(users == u)[0]) for u in test_users]
    write_data(tmp_path)
    _perturb(tmp_path, earlier, np.float32(12.0))
    _, _, res3 = _personal(tmp_path, config)
    for p in pos:
        assert res3.model[p].tobytes() != res.model[p].tobytes()
        assert res3.offsets["model"][p] != res.offsets["model"][p]


def test_personal_scores_recomputed(honest) -> None:
    _, a, ds, rows, res = honest
    # the stand-in predictor + its offset, scored independently on the valid steps
    y = a["target"][rows].astype(np.float64)
    m = a["mask"][rows]
    speed = np.nan_to_num(a["features"][rows][..., ds.data.names.index("rolling_speed_10")], nan=10)
    pred = (60.0 + 7.0 * speed).astype(np.float32).astype(np.float64)
    pers = pred + res.offsets["model"][:, None]
    assert res.personal["model"].abs_sum.sum() / m.sum() == pytest.approx(
        np.abs(pers - y)[m].mean(), rel=1e-9
    )
    assert res.cold["model"].abs_sum.sum() / m.sum() == pytest.approx(
        np.abs(pred - y)[m].mean(), rel=1e-9
    )
    assert (res.offsets["model"][res.sizes == 0] == 0).all()
