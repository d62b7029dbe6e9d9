"""Evaluate with a learned history-conditioned model (issues 13, 23, 24): the engine run over
the tree (`hrpred.evaluate.personal.personalise`) gives each val/test workout the population
curve (the network without context), the offset curve, the learned curve (the network with the
runs its plan used as context + the residual correction) and the headline (their weighted
mean); a workout's curves read only earlier workouts' HR; the stage saves them with the band,
and every test figure recomputes from the saved files.

A tiny history model is trained on conftest-style fake data with a personal HR level per user
(as in tests/test_personal_model.py); configs are the real params.yaml's, changed field by field.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from eval_fixtures import assert_test_block_recomputes
from fake_eval_data import write_data
from test_personal_model import TINY, add_user_levels

from hrpred.evaluate.config import EvalConfig
from hrpred.evaluate.evaluation import load_predictor, run_evaluate
from hrpred.evaluate.personal import learned_personal, personalise
from hrpred.evaluate.scoring import evaluate_all, fit_baselines
from hrpred.model import load_checkpoint, predict
from hrpred.personal.config import LearnedConfig, PersonalConfig
from hrpred.personal.context import build_context
from hrpred.personal.rules import shrunk_mean
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


def _personal(root: Path, model_path: Path, config, pcfg: PersonalConfig | None = None):
    """evaluate's path (cold scoring, then the engine with the learned network) on `root`,
    with params.yaml's personal config unless `pcfg` is given."""
    ds = open_dataset(root / "data" / "features", root / "data" / "split")
    history = open_history(root / "data" / "split")
    cfg = replace(config(EvalConfig, "evaluate"), baseline_fit_rows=0)
    predict_cold = load_predictor(model_path, ds.data.names)
    baselines = fit_baselines(ds, cfg)
    results = evaluate_all(ds, predict_cold, baselines, cfg)
    learned = learned_personal(model_path, root / "data" / "features", ds)
    assert learned is not None
    pcfg = pcfg or config(PersonalConfig, "personal")
    res = personalise(ds, history, results, predict_cold, baselines, pcfg, cfg.batch_rows, learned)
    return results, res


def _perturbed(root: Path, rows: list[int], shift: np.ndarray | np.float32) -> None:
    make_tree(root)
    path = root / "data" / "features" / "target.npy"
    y = np.load(path)
    y[rows] += shift
    np.save(path, y)


def _positions(res, rows) -> list[int]:
    """Positions in the personalised rows of data/features rows."""
    return [int(np.searchsorted(res.rows, r)) for r in rows]


def test_learned_personal_reads_only_earlier_workouts(trained, tmp_path, config) -> None:
    root, a = trained["root"], trained["arrays"]
    _, res = _personal(root, trained["model"], config)
    users = a["users"]
    assert res.learned.startswith("encoder/") and res.has_learned and res.ref is not None
    test_users = sorted(set(users[res.rows[res.take("test")]]))
    # each fake user has 4 workouts, one a day: each test user's 3rd has 2 earlier, 1 later
    w_rows = [int(np.flatnonzero(users == u)[2]) for u in test_users]
    pos = _positions(res, w_rows)
    assert all(res.sizes[p] == 2 and res.split[p] == "test" for p in pos)
    # the context and the offset move the prediction (else the checks below could not fail)
    for p in pos:
        assert not np.array_equal(res.curves["learned"][p], res.curves["cold"][p])
        assert res.plans[p].offset != 0
    # HR of w and of every later workout of its user perturbed: w's curves and plan unchanged
    later = [int(r) for u in test_users for r in np.flatnonzero(users == u)[2:]]
    _perturbed(tmp_path, later, np.linspace(-30, 30, T).astype(np.float32))
    _, res2 = _personal(tmp_path, trained["model"], config)
    for p in pos:
        assert res2.plans[p] == res.plans[p]
        for name, curve in res.curves.items():
            assert res2.curves[name][p].tobytes() == curve[p].tobytes(), name
        assert res2.spread[p].tobytes() == res.spread[p].tobytes()
    # one earlier workout perturbed: every personal curve changes (the population one does not)
    earlier = [int(np.flatnonzero(users == u)[0]) for u in test_users]
    _perturbed(tmp_path, earlier, np.float32(12.0))
    _, res3 = _personal(tmp_path, trained["model"], config)
    for p in pos:
        assert res3.curves["cold"][p].tobytes() == res.curves["cold"][p].tobytes()
        for name in ("offset", "learned", "headline"):
            assert res3.curves[name][p].tobytes() != res.curves[name][p].tobytes(), name


def test_curves_against_an_independent_computation(trained, config) -> None:
    """Per val/test workout, recomputed here from the network and the history table:
    population = the network without context; learned = the network with the workout's
    earlier runs as context + the residual rule over the network's own residuals on those runs
    (each predicted with ITS earlier runs as context); offset = population + the offset rule
    over their population residuals; headline = the plan's weighted mean."""
    root = trained["root"]
    pcfg = config(PersonalConfig, "personal")
    pcfg = replace(pcfg, residual=replace(pcfg.residual, shrink=0.5))  # a visible correction
    results, res = _personal(root, trained["model"], config, pcfg)
    model, ckpt = load_checkpoint(trained["model"])
    ds = open_dataset(root / "data" / "features", root / "data" / "split")
    history = open_history(root / "data" / "split")
    ids = ds.data.index["workout_id"].to_numpy()
    ctx = build_context(
        ids, history, compute_summaries(root / "data" / "features"), int(ckpt["history"]["k_max"])
    )
    x = ds.data.features[:]
    warm = predict(model, ckpt, x, context=(ctx.values, ctx.mask)).astype(np.float64)
    cold = predict(model, ckpt, x).astype(np.float64)
    y, v = ds.data.target[:].astype(np.float64), ds.data.mask[:]
    row_of = {int(i): r for r, i in enumerate(ids)}
    mean = pd.DataFrame(
        {"cold": [(y[r] - cold[r])[v[r]].mean() for r in range(len(ids))],
         "learned": [(y[r] - warm[r])[v[r]].mean() for r in range(len(ids))]}, index=ids,
    )  # fmt: skip
    # the fake users have at most 3 earlier runs: no level change can be found, all are used
    assert all(p.used == p.earlier for p in res.plans)
    assert np.abs([p.residual for p in res.plans]).max() > 0.01
    for p, r in enumerate(res.rows):
        h = history[history["workout_id"] == ids[r]].sort_values("rank")
        days = h["days_before"].to_numpy(dtype=np.float64)
        earlier = mean.loc[h["hist_workout_id"].to_numpy()]
        off = shrunk_mean(pcfg.offset, earlier["cold"].to_numpy(), days)[0]
        resid = shrunk_mean(pcfg.residual, earlier["learned"].to_numpy(), days)[0]
        hand_w = 0.5 ** (days[: pcfg.residual.k] / pcfg.residual.half_life_days)
        hand = (hand_w * earlier["learned"].to_numpy()[: pcfg.residual.k]).sum() / (
            hand_w.sum() + pcfg.residual.shrink
        )
        assert resid == pytest.approx(hand, abs=1e-9)
        plan = res.plans[p]
        assert plan.offset == pytest.approx(off, abs=1e-4), p
        assert plan.residual == pytest.approx(resid, abs=1e-4), p
        c = {k: res.curves[k][p].astype(np.float64) for k in res.curves}
        np.testing.assert_allclose(c["cold"], cold[r], atol=1e-3)
        np.testing.assert_allclose(c["offset"], cold[r] + off, atol=1e-3)
        np.testing.assert_allclose(c["learned"], warm[r] + resid, atol=1e-3)
        w = plan.weights
        head = w[0] * c["cold"] + w[1] * c["offset"] + w[2] * c["learned"]
        np.testing.assert_allclose(c["headline"], head, atol=1e-3)
        assert row_of[int(ids[r])] == r
    # the population curve of the test rows is the cold scoring's, unchanged
    test = results["test"]
    np.testing.assert_array_equal(res.curves["cold"][res.take("test")], test.model)


@pytest.fixture(scope="module")
def stage(trained, tmp_path_factory, config) -> tuple[Path, dict]:
    """The stage's library call on a copy of the trained tree (the default learned factory)."""
    root = tmp_path_factory.mktemp("stage") / "tree"
    shutil.copytree(trained["root"], root)
    cfg = replace(
        config(EvalConfig, "evaluate"),
        animations=False,
        figure_dpi=20,
        n_scatter=50,
        example_min_steps=5,
    )
    return root, run_evaluate(cfg, config(PersonalConfig, "personal"), None, Layout(root))


def test_stage_saves_and_reports_the_learned_personalisation(stage) -> None:
    """run_evaluate's default factory picks the learned network; the saved predictions carry
    every curve and the band."""
    root, report = stage
    t = report["test"]
    assert t["learned_personal_model"].startswith("encoder/")
    off, learned = report["baselines"]["offset"]["test"], report["baselines"]["learned"]["test"]
    assert off["cold"] == t["cold"] == learned["cold"]  # the same network, history ignored
    assert len({off["mae"], learned["mae"], t["mae"]}) == 3
    assert t["mae"] == t["personal"]["mae"]
    saved = json.loads(Layout(root).metrics("evaluate").read_text())
    assert saved["test"]["learned_personal_model"] == t["learned_personal_model"]
    assert sum(b["n_workouts"] for b in t["by_history"].values()) == t["n_workouts"]
    # the band: calibrated on val (with the runner scale's reference), scored on test, plotted
    band = t["band"]
    assert band["level"] == 0.8 and 0 < band["coverage"] < 1 and band["width_bpm"] > 0
    assert sum(b["n_workouts"] for b in band["by_history"].values()) == t["n_workouts"]
    cal = json.loads(Layout(root).calibration.read_text())
    assert cal["level"] == 0.8 and cal["step"]["all"] > 0 and cal["runner_ref"] > 0
    plot = json.loads((root / "plots" / "band_by_history.json").read_text())
    assert [r["history"] for r in plot] == list(band["by_history"])
    traces = json.loads((root / "plots" / "personal_traces.json").read_text())
    assert traces and all(r["hr_p10"] < r["hr_personal"] < r["hr_p90"] for r in traces)
    preds = pd.read_parquet(Layout(root).predictions)
    assert (preds["hr_p10"] < preds["hr_personal"]).all()
    assert (preds["hr_personal"] < preds["hr_p90"]).all()
    workouts = pd.read_parquet(Layout(root).eval_workouts)
    assert (workouts["runner_factor"] > 0).all() and workouts["runner_factor"].nunique() > 1
    assert (workouts["w_learned"] > 0).all()


def test_the_test_block_recomputes_from_the_saved_files(stage) -> None:
    """Issue 23's acceptance: every figure of the test block (MAE and RMSE of the headline,
    cold, offset and learned predictions, the band's step coverage and width, each history
    bucket's personal and cold MAE) from predictions.parquet + workouts.parquet, by
    recompute_test and by pandas (the workout-average coverage: the next test)."""
    root, _ = stage
    figures = assert_test_block_recomputes(root, leave_out=("band.workout_avg_coverage",))
    assert {"band.coverage", "band.width_bpm", "learned.mae", "by_history.1-2.cold.mae"} <= set(
        figures
    )


def test_workout_average_coverage_recomputes_from_the_saved_files(stage) -> None:
    root, _ = stage
    assert_test_block_recomputes(root, only=("band.workout_avg_coverage",))


def test_population_model_is_personalised_by_the_offset(trained, config) -> None:
    """An LSTM without history support: no learned network (the offset personalises it)."""
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
    assert learned_personal(path, root / "data" / "features", ds) is None
    assert learned_personal(trained["model"], root / "data" / "features", ds) is not None
