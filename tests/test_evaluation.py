"""hrpred.evaluate (inputs, scoring, report): chunked evaluation equals a whole-array numpy
computation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from fake_eval_data import stand_in_predictor, write_tree

from hrpred.evaluate.config import EvalConfig
from hrpred.evaluate.evaluation import personal_report
from hrpred.evaluate.inputs import input_categories
from hrpred.evaluate.personal import personalise
from hrpred.evaluate.report import workout_maes
from hrpred.evaluate.saved import workout_table, write_predictions
from hrpred.evaluate.scoring import evaluate_all, fit_baselines
from hrpred.personal.config import PersonalConfig
from hrpred.store import open_dataset, open_history, read_rows


def per_workout_mae(hr_true: np.ndarray, hr_pred: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Oracle: MAE of each row over its valid steps (NaN without one), on whole arrays."""
    abs_err = np.where(valid, np.abs(np.asarray(hr_pred, np.float64) - hr_true), 0.0)
    n = valid.sum(axis=1)
    out = np.full(len(valid), np.nan)
    out[n > 0] = abs_err[n > 0].sum(axis=1) / n[n > 0]
    return out


def summarize(y: np.ndarray, p: np.ndarray, v: np.ndarray, el: np.ndarray) -> dict:
    """Oracle: every reported metric from whole [N, T] arrays (numpy, no chunking)."""
    err = (np.asarray(p, np.float64) - y)[v]
    late = (np.asarray(p, np.float64) - y)[v & (el >= 120.0)]
    w = per_workout_mae(y, p, v)
    w = w[~np.isnan(w)]
    return {
        "mae": np.abs(err).mean(),
        "rmse": np.sqrt(np.mean(err**2)),
        "mae_after_2min": np.abs(late).mean(),
        "workout_mae_mean": w.mean(),
        "workout_mae_median": np.median(w),
        "bias": err.mean(),
        "n_workouts": len(w),
        "n_steps": int(v.sum()),
    }


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluation")
    arrays = write_tree(root)
    ds = open_dataset(root / "data/features", root / "data/split")
    truth = pd.read_parquet(root / "data/raw/simulated_truth.parquet")
    return root, arrays, ds, truth


PERSONAL: list[PersonalConfig] = []  # the real personal config, set by `eval_cfg`


@pytest.fixture(scope="module")
def eval_cfg(config) -> EvalConfig:
    PERSONAL[:] = [config(PersonalConfig, "personal")]
    return config(EvalConfig, "evaluate")


def _run(tree, cfg: EvalConfig, batch_rows: int, name: str):
    """Scoring, personalisation (offset: no history network), the report and the saved
    predictions, each chunked by `batch_rows`."""
    root, _, ds, truth = tree
    cfg = replace(cfg, batch_rows=batch_rows, n_scatter=100)
    predict = stand_in_predictor(root, ds.data.names)
    baselines = fit_baselines(ds, cfg)
    results = evaluate_all(ds, predict, baselines, cfg, truth)
    cats = input_categories(ds, ds.rows["test"], cfg.categories, batch_rows)
    history = open_history(root / "data/split")
    pcfg = PERSONAL[0]
    res = personalise(ds, history, results, predict, baselines, pcfg, batch_rows)
    report = personal_report(ds, res, results, baselines.params(), pcfg, cats, truth)
    out = root / f"{name}.parquet"
    write_predictions(out, ds, res, None)
    workout_table(ds, res, None).to_parquet(root / f"{name}_workouts.parquet", index=False)
    preds = pd.read_parquet(out)
    return baselines, results, report, preds, pd.read_parquet(root / f"{name}_workouts.parquet")


def test_read_rows_of_a_memmap_equals_fancy_indexing(tree):
    _, _, ds, _ = tree
    data = ds.data
    assert isinstance(data.features, np.memmap)
    rows = np.array([0, 1, 2, 5, 9, 10, 47])  # runs and gaps
    for arr in (data.features, data.target, data.mask, data.elapsed):
        np.testing.assert_array_equal(read_rows(arr, rows), np.asarray(arr)[rows])
    assert read_rows(data.target, np.zeros(0, np.int64)).shape == (0, data.target.shape[1])


def test_chunks_of_three_rows_equal_whole_arrays(tree, eval_cfg):
    root, a, ds, truth = tree
    data = ds.data
    baselines, results, report, preds, _ = _run(tree, eval_cfg, 3, "chunked")
    rows = ds.rows["test"]
    assert len(rows) > 3  # several chunks
    # whole-array reference: every prediction of the split at once, metrics on flat arrays
    x = np.asarray(data.features[rows])
    y = np.asarray(data.target[rows], dtype=np.float64)
    v = np.asarray(data.mask[rows], dtype=bool)
    el = np.asarray(data.elapsed[rows], dtype=np.float64)
    model = np.asarray(stand_in_predictor(root, data.names)(x), dtype=np.float64)
    whole = {"model": model, **baselines.predict(x, el, 0, 1)}
    assert data.names[:2] == ["speed", "altitude"]
    for name, pred in whole.items():
        ref = summarize(y, pred, v, el)
        got = report["test"] if name == "model" else report["baselines"][name]["test"]
        got = got["cold"]  # history ignored: the plain predictor
        for key, value in ref.items():
            assert got[key] == pytest.approx(value, rel=1e-12), (name, key)
    np.testing.assert_array_equal(workout_maes(results["test"]), per_workout_mae(y, model, v))
    # offset diagnostics on the whole arrays
    err = np.where(v, model - y, 0.0)
    n = v.sum(axis=1)
    has = n > 0
    bias_w = err[has].sum(axis=1) / n[has]
    resid = np.abs(err[has] - bias_w[:, None])[v[has]]
    diag = report["diagnostics"]
    assert diag["test_mae_workout_offset_removed"] == pytest.approx(resid.mean(), rel=1e-12)
    assert diag["test_workout_bias_std"] == pytest.approx(bias_w.std(), rel=1e-12)
    # noise floor: the fake truth is hr_clean = target (float32-rounded) and hr_physio
    phys = np.where(v, a["physio"][rows], np.nan)
    assert report["noise_floor"]["n_steps"] == int(v.sum())
    assert report["noise_floor"]["model_vs_physio_mae"] == pytest.approx(
        np.abs(model - phys)[v].mean(), rel=1e-12
    )
    # model predictions kept for the test split are the predictor's, unchanged
    np.testing.assert_array_equal(results["test"].model, model.astype(np.float32))
    # predictions table: every real step of val then test, in row order
    lengths = data.lengths(rows)
    test = preds[preds["split"] == "test"]
    assert len(test) == int(lengths.sum())
    inside = np.arange(y.shape[1])[None, :] < lengths[:, None]
    np.testing.assert_array_equal(test["hr_cold"].to_numpy(), model[inside].astype(np.float32))
    np.testing.assert_array_equal(test["valid"].to_numpy(), v[inside])
    np.testing.assert_array_equal(test["hr_true"].to_numpy(), y[inside].astype(np.float32))


def test_result_does_not_depend_on_batch_rows(tree, eval_cfg):
    _, _, small, p_small, w_small = _run(tree, eval_cfg, 3, "b3")
    _, _, big, p_big, w_big = _run(tree, eval_cfg, 1000, "b1000")
    pd.testing.assert_frame_equal(p_small, p_big)
    pd.testing.assert_frame_equal(w_small, w_big)

    def close(a, b, path=""):
        if isinstance(a, dict):
            assert a.keys() == b.keys(), path
            for k in a:
                close(a[k], b[k], f"{path}.{k}")
        elif isinstance(a, float):
            assert a == pytest.approx(b, rel=1e-12, nan_ok=True), path
        else:
            assert a == b, path

    close(small, big)
