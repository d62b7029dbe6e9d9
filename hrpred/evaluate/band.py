"""The 80% band (issue 14): calibrate on the validation split, score on test.

The band is the learned model's personalised prediction (network + residual correction, as
scored in `hrpred.evaluate.personal`) -/+ a conformal multiple of its spread head
(`hrpred.uncertainty`). Validation rows are predicted exactly as test rows (their own history,
their own residual correction), calibrated per group of history buckets (`evaluate.band`); the
test split is then scored:
per-step coverage and width, the workout-average band's coverage, and the pinball loss of the
band's ends for the model, its uncalibrated Laplace band and a constant +- residual-quantile
band (fitted on validation).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from hrpred.evaluate.config import EvalConfig
from hrpred.evaluate.personal import learned_with_residual
from hrpred.evaluate.results import LearnedPersonal, PersonalResult, SplitResult
from hrpred.personal.config import OffsetConfig
from hrpred.split.history import BUCKETS, history_buckets, history_sizes
from hrpred.store import Dataset, read_rows
from hrpred.uncertainty import (
    BandConfig,
    Calibration,
    average_parts,
    band,
    calibrate,
    coverage,
    pinball,
    quantile_levels,
    runner_entry,
    runner_factors,
    runner_interval,
)


def calibrate_on_val(
    ds: Dataset,
    val: SplitResult,
    history: pd.DataFrame,
    learned: LearnedPersonal,
    cfg: EvalConfig,
    residual: OffsetConfig,
    bcfg: BandConfig,
) -> Calibration:
    """Conformal constants from the validation rows' personalised predictions."""
    ids = ds.data.index["workout_id"].to_numpy()[val.rows]
    needed = history[history["workout_id"].isin(np.unique(ids))]
    center, spread, resid, scores = learned_with_residual(
        ds, val.rows, needed, ids, learned, cfg, residual
    )
    y = read_rows(ds.data.target, val.rows)
    v = np.asarray(read_rows(ds.data.mask, val.rows), dtype=bool)
    sizes = history_sizes(history, ids)
    runner = None
    if bcfg.runner.k > 0:  # the reference: the mean score of the validation workouts
        runner = runner_entry(bcfg.runner, scores, ids)
        spread = spread * runner_factors(bcfg.runner, runner["ref"], needed, scores, ids)[:, None]
    return calibrate(y, center + resid[:, None], spread, v, sizes, bcfg, runner)


def _scores(
    y: np.ndarray,
    center: np.ndarray,
    spread: np.ndarray,
    v: np.ndarray,
    q: np.ndarray,
    q_avg: np.ndarray,
    taus: tuple[float, float],
) -> dict[str, float]:
    lo, hi = band(center, spread, q)
    ya, ca, sa = average_parts(y, center, spread, v)
    ok = np.isfinite(ya)
    half_avg = q_avg * sa
    return {
        "coverage": coverage(y, lo, hi, v),
        "width_bpm": float((hi - lo)[v].mean()) if v.any() else float("nan"),
        "workout_avg_coverage": float((np.abs(ya - ca)[ok] <= half_avg[ok]).mean())
        if ok.any()
        else float("nan"),
        "workout_avg_width_bpm": float(2 * half_avg[ok].mean()) if ok.any() else float("nan"),
        "pinball": 0.5 * (pinball(y, lo, taus[0], v) + pinball(y, hi, taus[1], v)),
    }


def band_report(
    ds: Dataset,
    test: SplitResult,
    val: SplitResult,
    personal: PersonalResult,
    cal: Calibration,
    constant_hr: float,
    resamples: int = 0,
    seed: int = 0,
) -> dict[str, Any]:
    """metrics/evaluate.json `test.band`: the calibrated band on test, overall and per history
    bucket (with a 90% interval of each per-step coverage over `resamples` redraws of the
    test runners), beside the uncalibrated Laplace band and a constant band. Sets
    `personal.band` (the test rows' calibrated bounds, for the example traces)."""
    assert personal.spread is not None and personal.scores is not None
    assert personal.history is not None
    y = read_rows(ds.data.target, test.rows)
    v = np.asarray(read_rows(ds.data.mask, test.rows), dtype=bool)
    ids = ds.data.index["workout_id"].to_numpy()[test.rows]
    factor = cal.factors(personal.history, personal.scores, ids)
    center, spread, sizes = personal.model, personal.spread * factor[:, None], personal.sizes
    taus = tuple(quantile_levels(cal.level))
    q, q_avg = cal.multipliers(sizes), cal.multipliers(sizes, "average")
    personal.band = band(center, spread, q)  # for the example traces
    labels = history_buckets(sizes)
    lo, hi = personal.band
    inside = ((y >= lo) & (y <= hi) & v).sum(axis=1)
    runners = ds.data.index["user_id"].to_numpy()[test.rows]

    def spread_of(sel: np.ndarray) -> dict[str, Any]:
        interval = runner_interval(inside[sel], v[sel].sum(axis=1), runners[sel], resamples, seed)
        return {"n_runners": int(len(np.unique(runners[sel]))),
                "coverage_runner_interval_90": list(interval)}  # fmt: skip

    out: dict[str, Any] = {
        "level": cal.level,
        "method": "split-conformal on validation, |residual| / (Laplace spread x runner "
        "scale), per group of history buckets",
        "runner_factor": _quantiles(factor),
        **_scores(y, center, spread, v, q, q_avg, taus),
        **spread_of(np.ones(len(labels), bool)),
        "by_history": {},
    }
    for b in BUCKETS:
        sel = labels == b
        if sel.any():
            out["by_history"][b] = {
                "n_workouts": int(sel.sum()),
                **_scores(y[sel], center[sel], spread[sel], v[sel], q[sel], q_avg[sel], taus),
                **spread_of(sel),
            }
    # the same spread without calibration: the Laplace central band |r| <= b ln(1 / (1 - level))
    raw = math.log(1.0 / (1.0 - cal.level))
    ones = np.full(len(sizes), raw)
    out["uncalibrated"] = _scores(y, center, personal.spread, v, ones, ones, taus)
    # constant +- the validation residual quantiles
    yv = read_rows(ds.data.target, val.rows).astype(np.float64)
    vv = np.asarray(read_rows(ds.data.mask, val.rows), dtype=bool)
    lo_q, hi_q = np.quantile(yv[vv] - constant_hr, taus)
    lo = np.full(y.shape, constant_hr + lo_q)
    hi = np.full(y.shape, constant_hr + hi_q)
    out["constant_band"] = {
        "coverage": coverage(y, lo, hi, v),
        "width_bpm": float(hi_q - lo_q),
        "pinball": 0.5 * (pinball(y, lo, taus[0], v) + pinball(y, hi, taus[1], v)),
    }
    return out


def _quantiles(a: np.ndarray) -> dict[str, float]:
    """Min, median and max of the runner factors of the test rows."""
    return {"min": float(a.min()), "median": float(np.median(a)), "max": float(a.max())}


def band_plot(report: dict[str, Any]) -> list[dict[str, Any]]:
    """plots/band_by_history.json: coverage and width per history bucket (and overall)."""
    rows = [
        {"history": b, "n_workouts": r["n_workouts"], "coverage": r["coverage"],
         "width_bpm": r["width_bpm"], "workout_avg_coverage": r["workout_avg_coverage"]}
        for b, r in report["by_history"].items()
    ]  # fmt: skip
    return rows


def example_band(
    ds: Dataset, test: SplitResult, learned: LearnedPersonal, cal: Calibration, pos: int
) -> tuple[np.ndarray, np.ndarray]:
    """The calibrated band of the COLD prediction of test position `pos` (the example traces
    and GIFs draw the cold prediction): its spread with no context, the 0-history multiplier."""
    x = read_rows(ds.data.features, test.rows[pos : pos + 1])
    _, spread = learned.cold(x)
    assert test.model is not None
    lo, hi = band(test.model[pos : pos + 1], spread, cal.multipliers(np.zeros(1, np.int64)))
    return lo[0], hi[0]
