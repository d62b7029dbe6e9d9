"""The 80% band: calibrate on the validation split, score on test.

The band surrounds the headline personal prediction (`hrpred.evaluate.personal`): its
half-width is a conformal multiple of the network's spread (with the plan's context) times the
runner scale (`hrpred.personal.engine`), per history bucket of the earlier runs the plan used
(`hrpred.uncertainty`). Validation rows are personalised exactly as test rows; the multipliers
are calibrated on them, then the test split is scored: per-step coverage and width, the
workout-average band's coverage, and the pinball loss of the band's ends for the model, its
uncalibrated Laplace band and a constant +- residual-quantile band (fitted on validation).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from hrpred.evaluate.personal_report import Resampling
from hrpred.evaluate.results import PersonalResult
from hrpred.split.history import BUCKETS, history_buckets
from hrpred.store import Dataset, read_rows
from hrpred.uncertainty import (
    Band,
    BandConfig,
    Calibration,
    band,
    band_of,
    calibrate,
    coverage,
    pinball,
    quantile_levels,
    runner_interval,
)


def _arrays(ds: Dataset, res: PersonalResult, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = res.rows[pos]
    y = np.asarray(read_rows(ds.data.target, rows), np.float64)
    v = np.asarray(read_rows(ds.data.mask, rows), bool)
    return y, v


def calibrate_on_val(ds: Dataset, res: PersonalResult, bcfg: BandConfig) -> Calibration:
    """Conformal multipliers from the validation rows' headline predictions."""
    pos = res.take("val")
    y, v = _arrays(ds, res, pos)
    spread = res.spread[pos] * res.factors()[pos, None]
    center = res.curves["headline"][pos]
    return calibrate(y, center, spread, v, res.used()[pos], bcfg, res.ref)


def bands(ds: Dataset, res: PersonalResult, cal: Calibration) -> Band:
    """The calibrated band of every personalised row (val and test), around the headline; the
    workout average over each row's valid steps (as calibrated)."""
    valid = np.asarray(read_rows(ds.data.mask, res.rows), bool)
    return band_of(cal, res.curves["headline"], res.spread, res.used(), res.factors(), valid)


def _scores(
    y: np.ndarray,
    b: Band,
    v: np.ndarray,
    taus: tuple[float, float],
) -> dict[str, float]:
    lo, hi = b.lower, b.upper
    ya = np.where(v, y, 0.0).sum(axis=1) / np.maximum(v.sum(axis=1), 1)
    ok = v.any(axis=1) & np.isfinite(b.average_lower)
    return {
        "coverage": coverage(y, lo, hi, v),
        "width_bpm": float((hi - lo)[v].mean()) if v.any() else float("nan"),
        "workout_avg_coverage": float(
            ((ya >= b.average_lower) & (ya <= b.average_upper))[ok].mean()
        )
        if ok.any()
        else float("nan"),
        "workout_avg_width_bpm": float((b.average_upper - b.average_lower)[ok].mean())
        if ok.any()
        else float("nan"),
        "pinball": 0.5 * (pinball(y, lo, taus[0], v) + pinball(y, hi, taus[1], v)),
    }


def take_band(b: Band, sel: np.ndarray) -> Band:
    """The bands of the selected rows."""
    return Band(
        b.lower[sel], b.upper[sel], b.average[sel], b.average_lower[sel], b.average_upper[sel]
    )


def band_report(
    ds: Dataset,
    res: PersonalResult,
    cal: Calibration,
    test_band: Band,
    constant_hr: float,
    draw: Resampling,
    extra_groups: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """metrics/evaluate.json `test.band`: the calibrated band on test (`test_band`: the test
    rows' bands), overall, per history bucket of the earlier runs the plan used and per
    `extra_groups` (name -> boolean mask over the test rows), each coverage with a 90%
    interval over `draw`'s redraws of the test runners, beside the uncalibrated Laplace
    band and a constant band."""
    pos = res.take("test")
    y, v = _arrays(ds, res, pos)
    used = res.used()[pos]
    taus = quantile_levels(cal.level)
    labels = history_buckets(used)
    inside = ((y >= test_band.lower) & (y <= test_band.upper) & v).sum(axis=1)
    runners = draw.users

    def group(sel: np.ndarray) -> dict[str, Any]:
        interval = runner_interval(
            inside[sel], v[sel].sum(axis=1), runners[sel], draw.resamples, draw.seed
        )
        return {
            "n_workouts": int(sel.sum()),
            **_scores(y[sel], take_band(test_band, sel), v[sel], taus),
            "n_runners": int(len(np.unique(runners[sel]))),
            "coverage_runner_interval_90": list(interval),
        }

    factor = res.factors()[pos]
    out: dict[str, Any] = {
        "level": cal.level,
        "method": "split-conformal on validation, |residual| / (Laplace spread x runner "
        "scale) around the headline, per history bucket of the earlier runs used",
        "runner_factor": {
            "min": float(factor.min()),
            "median": float(np.median(factor)),
            "max": float(factor.max()),
        },
        **group(np.ones(len(pos), bool)),
        "by_history": {b: group(labels == b) for b in BUCKETS if (labels == b).any()},
    }
    for name, sel in (extra_groups or {}).items():
        if sel.any():
            out[name] = group(sel)
    # the same spread without calibration: the Laplace central band |r| <= b ln(1 / (1 - level))
    raw = math.log(1.0 / (1.0 - cal.level))
    center = res.curves["headline"][pos]
    lo, hi = band(center, res.spread[pos], raw)
    out["uncalibrated"] = {
        "coverage": coverage(y, lo, hi, v),
        "width_bpm": float((hi - lo)[v].mean()) if v.any() else float("nan"),
        "pinball": 0.5 * (pinball(y, lo, taus[0], v) + pinball(y, hi, taus[1], v)),
    }
    # constant +- the validation residual quantiles
    yv, vv = _arrays(ds, res, res.take("val"))
    lo_q, hi_q = np.quantile(yv[vv] - constant_hr, taus)
    lo = np.full(y.shape, constant_hr + lo_q)
    hi = np.full(y.shape, constant_hr + hi_q)
    out["constant_band"] = {
        "coverage": coverage(y, lo, hi, v),
        "width_bpm": float(hi_q - lo_q),
        "pinball": 0.5 * (pinball(y, lo, taus[0], v) + pinball(y, hi, taus[1], v)),
    }
    return out


def band_plot(workouts: pd.DataFrame) -> list[dict[str, Any]]:
    """plots/band_by_history.json from the saved per-workout table: per history bucket of the
    earlier runs used: the test workouts' per-step coverage and width, and workout-average
    coverage."""
    w = workouts[(workouts["split"] == "test") & (workouts["n_valid"] > 0)]
    out = []
    for b in BUCKETS:
        g = w[w["band_bucket"] == b]
        if len(g):
            inside = (g["avg_true"] >= g["avg_lo"]) & (g["avg_true"] <= g["avg_hi"])
            out.append({"history": b, "n_workouts": int(len(g)),
                        "coverage": float(g["n_covered"].sum() / g["n_valid"].sum()),
                        "width_bpm": float((g["band_width_bpm"] * g["n_valid"]).sum()
                                           / g["n_valid"].sum()),
                        "workout_avg_coverage": float(inside.mean())})  # fmt: skip
    return out
