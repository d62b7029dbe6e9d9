"""Scoring of a predictor on the val/test splits: baselines, per-row error sums, the
predictions table and the noise floor.

The predictor is any function `features_unscaled[n, T, F] -> hr[n, T]` (the stage passes the
trained LSTM), so the whole report can be built and tested without a checkpoint. Val and test
are processed `batch_rows` workouts at a time: metrics come from per-workout error sums, plot
data from running counts and the predictions table is written chunk by chunk, so memory stays
bounded at full scale (only the test split's model predictions are kept, for example traces).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hrpred.evaluate.baselines import (
    ConstantBaseline,
    PhysioBaseline,
    RidgeBaseline,
    fit_constant,
    fit_physio,
    fit_ridge,
)
from hrpred.evaluate.categories import report_only_hr_band
from hrpred.evaluate.config import EvalConfig
from hrpred.evaluate.inputs import (
    EvalInputError,
    chunks,
    count_valid,
    feature_column,
    feature_index,
    fit_subsample,
)
from hrpred.evaluate.metrics import NoiseFloorSums, RowSums, row_sums
from hrpred.evaluate.plots import PlotSums
from hrpred.evaluate.results import Predictor, SplitResult
from hrpred.features.scaler import apply_scaler, scaler_arrays
from hrpred.store import Dataset, read_rows


@dataclass
class Baselines:
    """The fitted reference predictors and their reported parameters."""

    constant: ConstantBaseline
    ridge: RidgeBaseline
    physio: PhysioBaseline
    scale: Callable[[np.ndarray], np.ndarray]

    def params(self) -> dict[str, dict[str, float]]:
        p = self.physio
        return {
            "constant": {"hr_bpm": self.constant.value},
            "ridge": {"alpha": self.ridge.alpha, "intercept": self.ridge.intercept},
            "physio": {
                "tau_s": p.tau_s,
                "h0": p.h0,
                "a": p.a,
                "b_per_kmh": p.b,
                "c_per_m_per_min": p.c,
            },
        }

    def predict(
        self, features: np.ndarray, elapsed: np.ndarray, speed_col: int, altitude_col: int
    ) -> dict[str, np.ndarray]:
        """Predictions [n, T] (float64) of every baseline for one chunk of rows."""
        el = np.asarray(elapsed, dtype=np.float64)
        return {
            "constant": self.constant.predict(el.shape),
            "ridge": self.ridge.predict(self.scale(features)),
            "physio": self.physio.predict(
                np.asarray(features[:, :, speed_col], dtype=np.float64),
                np.asarray(features[:, :, altitude_col], dtype=np.float64),
                el,
            ),
        }


def fit_baselines(ds: Dataset, cfg: EvalConfig) -> Baselines:
    """Fit the baselines on (a seeded subsample of) the train rows."""
    train = ds.rows["train"]
    if len(train) == 0:
        raise EvalInputError("no train rows in assignment.parquet: rerun split")
    train = fit_subsample(train, cfg.baseline_fit_rows, cfg.seed)
    # float32 as stored: the fits convert to float64 themselves (same values, half the memory)
    y_tr = read_rows(ds.data.target, train)
    m_tr = np.asarray(read_rows(ds.data.mask, train), dtype=bool)
    if not m_tr.any():
        raise EvalInputError("no valid train steps: check featurize/clean outputs")
    el_tr = read_rows(ds.data.elapsed, train)

    mean, std = scaler_arrays(ds.data.names, ds.split.scaler)

    def scaled(x: np.ndarray) -> np.ndarray:
        return apply_scaler(x, mean, std)

    const = fit_constant(y_tr, m_tr)
    ridge = fit_ridge(_ScaledView(ds.data.features, train, scaled), y_tr, m_tr, cfg.ridge_alpha)
    physio = fit_physio(
        feature_column(ds, "speed", train),
        feature_column(ds, "altitude", train),
        el_tr,
        y_tr,
        m_tr,
        cfg.physio_taus_s,
        cfg.physio_climb_clip,
    )
    return Baselines(const, ridge, physio, scaled)


class _ScaledView:
    """Row-chunk view of the features that scales on access (fit_ridge slices it by rows)."""

    def __init__(
        self, features: np.ndarray, rows: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]
    ) -> None:
        self._f, self._rows, self._fn = features, rows, fn
        self.shape = (len(rows), *features.shape[1:])

    def __getitem__(self, sl: slice) -> np.ndarray:
        return self._fn(read_rows(self._f, self._rows[sl]))


def evaluate_split(
    ds: Dataset,
    predict: Predictor,
    baselines: Baselines,
    split: str,
    cfg: EvalConfig,
    plot: PlotSums | None = None,
    noise: NoiseFloorSums | None = None,
    keep_model: bool = False,
) -> SplitResult:
    """Predict one split chunk by chunk (`cfg.batch_rows` rows) and accumulate its metrics.

    Memory is bounded by one chunk (plus `keep_model`'s [n, T] predictions when asked).
    """
    data = ds.data
    rows = ds.rows[split]
    t = data.seq_len
    speed_col = feature_index(ds, "speed")
    alt_col = feature_index(ds, "altitude")
    lengths = data.lengths(rows)
    parts: dict[str, list[RowSums]] = {"model": [], "constant": [], "ridge": [], "physio": []}
    bands: list[str] = []
    resid_abs, resid_n = 0.0, 0
    kept: np.ndarray | None = None
    for start, chunk in chunks(rows, cfg.batch_rows, f"evaluate {split}"):
        x = read_rows(data.features, chunk)
        y = read_rows(data.target, chunk)
        v = np.asarray(read_rows(data.mask, chunk), dtype=bool)
        el = read_rows(data.elapsed, chunk)
        raw = np.asarray(predict(x))
        if keep_model:
            if kept is None:
                kept = np.empty((len(rows), t), dtype=raw.dtype)
            kept[start : start + len(chunk)] = raw
        model = np.asarray(raw, dtype=np.float64)
        preds = {"model": model, **baselines.predict(x, el, speed_col, alt_col)}
        for name, pred in preds.items():
            parts[name].append(row_sums(y, pred, v, el))
        bands += report_only_hr_band(y, v, cfg.hr_band_edges)
        # offset diagnostics: error left after removing each workout's mean error
        s = parts["model"][-1]
        has = s.n > 0
        if has.any():
            err = np.where(v, model - np.asarray(y, dtype=np.float64), 0.0)[has]
            bias_w = s.err_sum[has] / s.n[has]
            resid = np.abs(err - bias_w[:, None])[v[has]]
            resid_abs += float(resid.sum())
            resid_n += int(resid.size)
        if plot is not None:
            plot.add(y, model, v, el)
        if noise is not None:
            idx = data.index.iloc[chunk]
            noise.add(idx, lengths[start : start + len(chunk)], y, model, v)
    return SplitResult(
        rows=rows,
        sums={k: RowSums.concat(p) for k, p in parts.items()},
        bands=bands,
        resid_abs_sum=resid_abs,
        resid_n=resid_n,
        plot=plot,
        noise=noise,
        model=kept,
    )


def evaluate_all(
    ds: Dataset,
    predict: Predictor,
    baselines: Baselines,
    cfg: EvalConfig,
    truth: pd.DataFrame | None = None,
) -> dict[str, SplitResult]:
    """Val and test (cold: the population prediction), chunk by chunk.

    The test split also gets the plot sums (seeded by `cfg.seed`) and the noise floor (when
    `truth` has the simulator's HR); both keep their model predictions (the personalised
    pass starts from them, and the example traces draw them).
    """
    test = ds.rows["test"]
    plot = PlotSums(count_valid(ds, test, cfg.batch_rows), cfg.seed, cfg.n_scatter)
    noise = None
    if truth is not None and NoiseFloorSums.NEED <= set(truth.columns):
        noise = NoiseFloorSums(truth)
    results = {"val": evaluate_split(ds, predict, baselines, "val", cfg, keep_model=True)}
    results["test"] = evaluate_split(
        ds, predict, baselines, "test", cfg, plot, noise, keep_model=True
    )
    return results
