"""Evaluate with a learned history-conditioned model (issue 13): the model row's personal score
is the network with its history context, its cold score the same network with none, and the
personalised prediction of a workout reads only earlier workouts' HR.

A tiny history model is trained on conftest-style fake data with a personal HR level per user
(as in tests/test_personal_model.py); configs are the real params.yaml's, changed field by field.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from fake_eval_data import write_data
from test_personal_model import TINY, add_user_levels

from hrpred.evaluate.config import EvalConfig
from hrpred.evaluate.evaluation import load_predictor, run_evaluate
from hrpred.evaluate.personal import OFFSET_ONLY, learned_personal, personalise
from hrpred.evaluate.scoring import evaluate_all, fit_baselines
from hrpred.model import load_checkpoint, predict
from hrpred.personal.config import LearnedConfig, OffsetConfig
from hrpred.personal.context import build_context
from hrpred.personal.summaries import compute_summaries
from hrpred.store import Layout, open_dataset, open_history
from hrpred.train.config import TrainConfig, TrainPaths
from hrpred.train.data import load_train_data
from hrpred.train.history_data import load_history_data
from hrpred.train.loop import fit

N, T = 160, 30  # 40 users x 4 workouts (one per day), user-disjoint train/val/test


def make_tree(root: Path) -> dict:
    """The fake tree with per-user HR levels (deterministic: same bytes every call)."""
    arrays = write_data(root, n=N, t=T, seed=1)
    add_user_levels(root)
    return arrays


@pytest.fixture(scope="module")
def trained(tmp_path_factory, config) -> dict:
    root = tmp_path_factory.mktemp("learned")
    arrays = make_tree(root)
    cfg = replace(config(TrainConfig, "train"), **TINY)
    learned = config(LearnedConfig, "personal.learned")
    assert learned.model == "encoder"  # the default this file is about
    data = load_train_data(root / "data" / "features", root / "data" / "split")
    hd = load_history_data(data, root / "data" / "features", root / "data" / "split", learned)
    model_path = root / "models" / "model.pt"
    fit(cfg, data, TrainPaths(model_path, root / "ckpt.pt", None), history=hd)
    return {"root": root, "arrays": arrays, "model": model_path}


def _personal(root: Path, model_path: Path, config, residual: bool = True):
    """evaluate's scoring path (cold predictor, default learned personaliser, the residual
    correction of params.yaml unless `residual` is False) on `root`."""
    ds = open_dataset(root / "data" / "features", root / "data" / "split")
    history = open_history(root / "data" / "split")
    cfg = replace(config(EvalConfig, "evaluate"), baseline_fit_rows=0)
    predict_cold = load_predictor(model_path, ds.data.names)
    baselines = fit_baselines(ds, cfg)
    results = evaluate_all(ds, predict_cold, baselines, cfg)
    learned = learned_personal(model_path, root / "data" / "features", ds, history)
    assert learned is not None
    ocfg = config(OffsetConfig, "personal.offset")
    rcfg = config(OffsetConfig, "personal.residual") if residual else None
    res = personalise(ds, results, history, predict_cold, baselines, cfg, ocfg, learned, rcfg)
    return results["test"], res


def _perturbed(root: Path, rows: list[int], shift: np.ndarray | np.float32) -> None:
    make_tree(root)
    path = root / "data" / "features" / "target.npy"
    y = np.load(path)
    y[rows] += shift
    np.save(path, y)


def test_learned_personal_reads_only_earlier_workouts(trained, tmp_path, config) -> None:
    root, a = trained["root"], trained["arrays"]
    test, res = _personal(root, trained["model"], config)
    rows, users = test.rows, a["users"]
    assert res.learned.startswith("encoder/")
    test_users = sorted(set(users[rows]))
    # each fake user has 4 workouts, one a day: each test user's 3rd has 2 earlier, 1 later
    w_rows = [int(np.flatnonzero(users == u)[2]) for u in test_users]
    pos = [int(np.searchsorted(rows, r)) for r in w_rows]
    assert all(res.sizes[p] == 2 for p in pos)
    # the context moves the prediction (else the checks below could not fail)
    assert all(not np.array_equal(res.model[p], test.model[p]) for p in pos)
    # HR of w and of every later workout of its user perturbed: w's prediction is unchanged
    later = [int(r) for u in test_users for r in np.flatnonzero(users == u)[2:]]
    _perturbed(tmp_path, later, np.linspace(-30, 30, T).astype(np.float32))
    _, res2 = _personal(tmp_path, trained["model"], config)
    for p in pos:
        assert res2.model[p].tobytes() == res.model[p].tobytes()
    # one earlier workout perturbed: the prediction changes
    earlier = [int(np.flatnonzero(users == u)[0]) for u in test_users]
    _perturbed(tmp_path, earlier, np.float32(12.0))
    _, res3 = _personal(tmp_path, trained["model"], config)
    for p in pos:
        assert res3.model[p].tobytes() != res.model[p].tobytes()


def test_learned_personal_is_the_network_with_its_context(trained, config) -> None:
    """personal = predict(context of the history), cold = the same network without one;
    baseline offset = cold + offset (comparable to the learned personaliser)."""
    root = trained["root"]
    test, res = _personal(root, trained["model"], config, residual=False)
    assert not res.residual.any()
    model, ckpt = load_checkpoint(trained["model"])
    ds = open_dataset(root / "data" / "features", root / "data" / "split")
    ids = ds.data.index["workout_id"].to_numpy()[test.rows]
    ctx = build_context(
        ids,
        open_history(root / "data" / "split"),
        compute_summaries(root / "data" / "features"),
        int(ckpt["history"]["k_max"]),
    )
    x = ds.data.features[test.rows]
    warm = predict(model, ckpt, x, context=(ctx.values, ctx.mask))
    np.testing.assert_array_equal(res.model, warm.astype(np.float64))
    np.testing.assert_array_equal(test.model, predict(model, ckpt, x))
    y = ds.data.target[test.rows].astype(np.float64)
    v = ds.data.mask[test.rows]
    pers = test.model.astype(np.float64) + res.offsets["offset"][:, None]
    assert res.personal["offset"].abs_sum.sum() / v.sum() == pytest.approx(
        np.abs(pers - y)[v].mean(), rel=1e-9
    )
    assert res.cold["offset"] is res.cold["model"]


def test_residual_correction_is_the_offset_of_the_networks_own_history_residuals(
    trained, config
) -> None:
    """personal = network(context) + the residual rule over the network's personalised
    residuals on each history workout (itself predicted with its own earlier context)."""
    root = trained["root"]
    rcfg = replace(config(OffsetConfig, "personal.residual"), shrink=0.5)
    ds = open_dataset(root / "data" / "features", root / "data" / "split")
    history = open_history(root / "data" / "split")
    cfg = replace(config(EvalConfig, "evaluate"), baseline_fit_rows=0)
    predict_cold = load_predictor(trained["model"], ds.data.names)
    results = evaluate_all(ds, predict_cold, fit_baselines(ds, cfg), cfg)
    learned = learned_personal(trained["model"], root / "data" / "features", ds, history)
    ocfg = config(OffsetConfig, "personal.offset")
    res = personalise(
        ds, results, history, predict_cold, fit_baselines(ds, cfg), cfg, ocfg, learned, rcfg
    )
    # independent reference: every row predicted with its own context, residual means by hand
    model, ckpt = load_checkpoint(trained["model"])
    ids = ds.data.index["workout_id"].to_numpy()
    ctx = build_context(
        ids, history, compute_summaries(root / "data" / "features"), int(ckpt["history"]["k_max"])
    )
    warm = predict(model, ckpt, ds.data.features[:], context=(ctx.values, ctx.mask))
    y, v = ds.data.target[:].astype(np.float64), ds.data.mask[:]
    mean_resid = {
        int(i): float((y[r] - warm[r])[v[r]].mean()) for r, i in enumerate(ids) if v[r].any()
    }
    test = results["test"]
    assert res.residual is not None and np.abs(res.residual).max() > 0.01
    for p, r in enumerate(test.rows):
        h = history[(history["workout_id"] == ids[r]) & (history["rank"] <= rcfg.k)]
        w = np.exp(-np.log(2) * h["days_before"].to_numpy() / rcfg.half_life_days)
        rr = np.array([mean_resid[int(i)] for i in h["hist_workout_id"]])
        expected = float((w * rr).sum() / (w.sum() + rcfg.shrink)) if len(h) else 0.0
        assert res.residual[p] == pytest.approx(expected, abs=1e-4)
        np.testing.assert_allclose(res.model[p], warm[r] + res.residual[p], atol=1e-3)


def test_stage_reports_the_learned_personaliser(trained, tmp_path, config) -> None:
    """run_evaluate's default factory picks the learned model; an HRLSTM gets the offset."""
    root = tmp_path / "tree"
    shutil.copytree(trained["root"], root)
    cfg = replace(
        config(EvalConfig, "evaluate"),
        animations=False,
        figure_dpi=20,
        n_scatter=50,
        example_min_steps=5,
    )
    ocfg = config(OffsetConfig, "personal.offset")
    report = run_evaluate(cfg, ocfg, config(OffsetConfig, "personal.residual"), None, Layout(root))
    t = report["test"]
    assert t["learned_personal_model"].startswith("encoder/")
    off = report["baselines"]["offset"]["test"]
    assert off["cold"] == t["cold"]  # the same network, history ignored
    assert off["personal"] != t["personal"]
    assert t["mae"] == t["personal"]["mae"]
    saved = json.loads(Layout(root).metrics("evaluate").read_text())
    assert saved["test"]["learned_personal_model"] == t["learned_personal_model"]
    assert sum(b["n_workouts"] for b in t["by_history"].values()) == t["n_workouts"]
    # the band: calibrated on val, written for the bundle, scored on test, plotted
    band = t["band"]
    assert band["level"] == 0.8 and 0 < band["coverage"] < 1 and band["width_bpm"] > 0
    assert sum(b["n_workouts"] for b in band["by_history"].values()) == t["n_workouts"]
    cal = json.loads(Layout(root).calibration.read_text())
    assert cal["level"] == 0.8 and cal["step"]["all"] > 0
    plot = json.loads((root / "plots" / "band_by_history.json").read_text())
    assert [r["history"] for r in plot] == list(band["by_history"])
    traces = json.loads((root / "plots" / "personal_traces.json").read_text())
    assert traces and all(r["hr_p10"] < r["hr_personal"] < r["hr_p90"] for r in traces)


def test_population_model_is_personalised_by_the_offset(trained, config) -> None:
    """An LSTM without history support: no learned personaliser (the offset is the model's)."""
    from hrpred.model import HRLSTM, make_checkpoint, save_checkpoint

    root = trained["root"]
    ds = open_dataset(root / "data" / "features", root / "data" / "split")
    _, ckpt = load_checkpoint(trained["model"])
    lstm = HRLSTM(len(ds.data.names), hidden=4, layers=1, target_mean=140.0, target_std=15.0)
    path = root / "lstm.pt"
    save_checkpoint(
        make_checkpoint(lstm, features=ds.data.names, scaler=ckpt["scaler"], seq_len=T,
                        best_epoch=0, val={}, train_params={}),
        path,
    )  # fmt: skip
    history = open_history(root / "data" / "split")
    assert learned_personal(path, root / "data" / "features", ds, history) is None
    assert OFFSET_ONLY.startswith("none")
