"""The 80% band around a predicted HR curve: split-conformal calibration of the model's spread.

The model predicts a central curve and a per-step Laplace scale b (`hrpred.model`, spread head).
A raw Laplace band |residual| <= b ln 5 is only as good as the head; split-conformal
calibration makes it honest: on the *validation* workouts the score |recorded - predicted| / b
of every valid step is computed, and the band's half-width is q * b with q the empirical
quantile of those scores at level ceil((n + 1) * level) / n, n the number of validation
WORKOUTS (`workout_level`: the steps of one workout are not exchangeable, workouts are; Vovk
et al.; Lei et al. 2018), per group of history-size buckets (a group with fewer than
`min_workouts` validation workouts uses the pooled q). The groups: each history bucket
alone (the default: unbiased per bucket, as the spread head barely tells the buckets apart),
or the cold bucket (no earlier workout) and every bucket with history together
(`pool_history`: less noisy when the validation split holds only a few dozen runners, but
biased per bucket; `benchmarks/band_grouping.py` measures both). The workout-average
band (the average HR of a whole workout) is calibrated the same way on the score
|mean recorded - mean predicted| / mean b per workout.

The runner's own scale: runners differ in how noisy their HR is around any prediction
(sensor, physiology), which the spread head, reading speed and altitude, cannot see. Each
workout's spread is multiplied by a factor from the runner's earlier runs
(`hrpred.personal.engine`, params `personal.runner_scale`): 1 + rule(score - ref) / ref, the
scores being the RMS of (recorded - headline) / b of each earlier run and `ref` the validation
workouts' mean score (`Calibration.runner_ref`). The conformal multipliers are then calibrated
on spread * factor. The history bucket of a workout is the number of earlier runs its plan
used (those after the latest level change): right after a change, the band widens to the
bucket of the few runs since.

`band_of` is the one function that turns (center, spread, factor, history used) into the
per-step band and the workout-average band: evaluate, the bundle (`hrpred.bundle.runtime`),
`hrpred predict` and the app call it.

numpy and pandas: training, evaluation and serving share it; the constants are
models/calibration.json (written by evaluate, carried in the bundle).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hrpred.errors import HrpredError
from hrpred.params import ParamError
from hrpred.split.history import BUCKETS, history_buckets
from hrpred.store import write_json

POOLED = "all"  # the key of the pooled constants
CALIBRATION_FORMAT = "hrpred-calibration"


class CalibrationError(HrpredError, ValueError):
    """An unreadable or inconsistent calibration file (one line)."""


@dataclass(frozen=True)
class BandConfig:
    """params.yaml `evaluate.band`."""

    level: float  # nominal coverage of the band (0.8: the 10-90% band)
    min_workouts: int  # fewer validation workouts in a group of buckets: the pooled constant
    pool_history: bool  # one multiplier for every bucket with history; the cold bucket its own

    def __post_init__(self) -> None:
        if not 0 < self.level < 1 or self.min_workouts < 1:
            raise ParamError(
                "evaluate.band needs 0 < level < 1 and min_workouts >= 1 "
                f"(got {self.level}, {self.min_workouts})"
            )


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The split-conformal quantile: the ceil((n + 1) * level)-th smallest score (nan if none;
    the largest score when that rank is past n)."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    s = s[np.isfinite(s)]
    if len(s) == 0:
        return float("nan")
    k = min(math.ceil((len(s) + 1) * level), len(s))
    return float(np.partition(s, k - 1)[k - 1])


def workout_level(n_workouts: int, level: float) -> float:
    """The step quantile's level with the finite-sample correction of `n_workouts`:
    ceil((n + 1) * level) / n (at most 1). Steps of one workout share its level error, so the
    exchangeable unit is the workout, not the step; correcting with the number of steps would
    pretend to a sample hundreds of times larger."""
    if n_workouts < 1:
        return level
    return min(math.ceil((n_workouts + 1) * level) / n_workouts, 1.0)


def step_scores(
    y: np.ndarray, center: np.ndarray, spread: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """|y - center| / spread on valid steps (flattened)."""
    v = np.asarray(valid, dtype=bool)
    return np.abs(np.asarray(y, np.float64) - center)[v] / np.asarray(spread, np.float64)[v]


def average_parts(
    y: np.ndarray, center: np.ndarray, spread: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per workout row: mean recorded, mean predicted and mean spread over its valid steps
    (nan for a row without one)."""
    v = np.asarray(valid, dtype=bool)
    n = v.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = [
            np.where(v, np.asarray(a, np.float64), 0.0).sum(axis=1) / n for a in (y, center, spread)
        ]
    return mean[0], mean[1], mean[2]


@dataclass(frozen=True)
class Calibration:
    """Conformal multipliers of the spread: per history bucket and pooled (`all`)."""

    level: float
    step: dict[str, float]  # per-step band half-width = step[bucket] * spread
    average: dict[str, float]  # workout-average band half-width = average[bucket] * mean spread
    n_workouts: dict[str, int]  # validation workouts per bucket
    runner_ref: float | None = None  # the runner scale's reference score (None: no scale)

    def multipliers(self, sizes: np.ndarray, kind: str = "step") -> np.ndarray:
        """The multiplier of each workout with `sizes` history entries (float64 [N])."""
        table = self.step if kind == "step" else self.average
        labels = history_buckets(np.asarray(sizes))
        return np.array([table.get(str(b), table[POOLED]) for b in labels], dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        return {"format": CALIBRATION_FORMAT, **asdict(self)}

    @staticmethod
    def from_json(content: Mapping[str, Any]) -> Calibration:
        if not isinstance(content, Mapping) or content.get("format") != CALIBRATION_FORMAT:
            raise CalibrationError("not an hrpred calibration (rerun `dvc repro evaluate`)")
        try:
            cal = Calibration(
                float(content["level"]),
                {str(k): float(v) for k, v in content["step"].items()},
                {str(k): float(v) for k, v in content["average"].items()},
                {str(k): int(v) for k, v in content["n_workouts"].items()},
                _runner_ref(content.get("runner_ref")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CalibrationError(f"malformed calibration ({exc!r})") from None
        if POOLED not in cal.step or POOLED not in cal.average:
            raise CalibrationError("calibration lacks the pooled constants")
        return cal


def _runner_ref(content: Any) -> float | None:
    if content is None:
        return None
    ref = float(content)
    if not (math.isfinite(ref) and ref > 0):
        raise ValueError(f"runner_ref must be a finite number > 0, got {ref}")
    return ref


def calibrate(
    y: np.ndarray,
    center: np.ndarray,
    spread: np.ndarray,
    valid: np.ndarray,
    sizes: np.ndarray,
    cfg: BandConfig,
    runner_ref: float | None = None,
) -> Calibration:
    """Calibrate on validation rows (arrays [N, T], `sizes` [N] earlier runs each row's plan
    used; `spread` already multiplied by the runner factors of reference `runner_ref`)."""
    labels = history_buckets(np.asarray(sizes))
    ya, ca, sa = average_parts(y, center, spread, valid)
    avg_score = np.abs(ya - ca) / sa
    cold = BUCKETS[0]
    # each group's rows and the buckets its constants serve
    groups: list[tuple[np.ndarray, tuple[str, ...]]] = [(np.ones(len(labels), bool), (POOLED,))]
    if cfg.pool_history:
        groups += [(labels == cold, (cold,)), (labels != cold, BUCKETS[1:])]
    else:
        groups += [(labels == b, (b,)) for b in BUCKETS]
    step, average = {}, {}
    counts = {POOLED: len(labels), **{b: int((labels == b).sum()) for b in BUCKETS}}
    for sel, names in groups:
        if names != (POOLED,) and int(sel.sum()) < cfg.min_workouts:
            continue
        q_step = conformal_quantile(
            step_scores(y[sel], center[sel], spread[sel], valid[sel]),
            workout_level(int(np.isfinite(avg_score[sel]).sum()), cfg.level),
        )
        q_avg = conformal_quantile(avg_score[sel], cfg.level)
        for name in names:
            step[name], average[name] = q_step, q_avg
    if not np.isfinite(step[POOLED]) or not np.isfinite(average[POOLED]):
        raise CalibrationError("no valid validation step to calibrate the band on")
    return Calibration(cfg.level, step, average, counts, runner_ref)


def band(
    center: np.ndarray, spread: np.ndarray, q: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) = center -/+ q * spread; `q` per row ([N] for [N, T]) or a scalar."""
    qq = np.asarray(q, dtype=np.float64)
    half = np.asarray(spread, np.float64) * (
        qq[..., None] if qq.ndim and np.ndim(spread) > 1 else qq
    )
    c = np.asarray(center, np.float64)
    return c - half, c + half


@dataclass(frozen=True)
class Band:
    """A curve's calibrated band: per step and for the workout average (float64)."""

    lower: np.ndarray  # [T] or [N, T]
    upper: np.ndarray
    average: np.ndarray  # the mean center over valid steps: [] (a 0-d array) or [N]
    average_lower: np.ndarray
    average_upper: np.ndarray


def band_of(
    cal: Calibration,
    center: np.ndarray,
    spread: np.ndarray,
    used: np.ndarray | int,
    factor: np.ndarray | float = 1.0,
    valid: np.ndarray | None = None,
) -> Band:
    """The calibrated band of curves `center` [T] or [N, T] with the network's `spread` (same
    shape), the earlier runs each curve's plan `used` (int or [N]: its history bucket) and the
    runner scale `factor` (float or [N]): per step center -/+ q_step * factor * spread; the
    workout average mean(center) -/+ q_average * factor * mean(spread) over `valid` steps
    (default: where center and spread are finite; nan without one)."""
    c = np.asarray(center, dtype=np.float64)
    b = np.asarray(spread, dtype=np.float64) * np.asarray(factor, np.float64)[..., None]
    sizes = np.atleast_1d(np.asarray(used, dtype=np.int64))
    q, q_avg = cal.multipliers(sizes), cal.multipliers(sizes, "average")
    if c.ndim == 1:
        q, q_avg = q[0], q_avg[0]
    lower, upper = band(c, b, q)
    v = np.isfinite(c) & np.isfinite(b) if valid is None else np.asarray(valid, bool)
    n = v.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(v, c, 0.0).sum(axis=-1) / n
        half = q_avg * np.where(v, b, 0.0).sum(axis=-1) / n
    return Band(lower, upper, mean, mean - half, mean + half)


def pinball(y: np.ndarray, pred: np.ndarray, tau: float, valid: np.ndarray) -> float:
    """Mean pinball (quantile) loss of `pred` as the tau-quantile, over valid steps."""
    v = np.asarray(valid, dtype=bool)
    d = (np.asarray(y, np.float64) - np.asarray(pred, np.float64))[v]
    return float(np.mean(np.maximum(tau * d, (tau - 1) * d))) if d.size else float("nan")


def write_calibration(path: Path, cal: Calibration) -> None:
    write_json(Path(path), cal.to_json(), digits=6)


def coverage(y: np.ndarray, lo: np.ndarray, hi: np.ndarray, valid: np.ndarray) -> float:
    """Share of valid steps with lo <= y <= hi."""
    v = np.asarray(valid, dtype=bool)
    yy = np.asarray(y, np.float64)
    inside = (yy >= lo) & (yy <= hi)
    return float(inside[v].mean()) if v.any() else float("nan")


def runner_interval(
    num: np.ndarray,
    den: np.ndarray,
    runners: np.ndarray,
    resamples: int,
    seed: int,
    level: float = 0.9,
) -> tuple[float, float]:
    """A `level` interval of the ratio sum(num) / sum(den) when the RUNNERS are redrawn: the
    per-workout `num` and `den` are summed per runner, runners are resampled with replacement
    `resamples` times (numpy Generator seeded by `seed`) and the ratio is recomputed; (nan,
    nan) without resamples or a positive `den`. A band's coverage is covered / valid steps, a
    MAE ratio one absolute-error sum over another, a share of runners flagged runners / 1 per
    runner. The workouts of one runner share that runner's level, so this, not a per-step or
    per-workout interval, is the sampling noise of a figure measured on a few dozen runners."""
    num = np.asarray(num, np.float64)
    den = np.asarray(den, np.float64)
    _, idx = np.unique(np.asarray(runners), return_inverse=True)
    per_num = np.bincount(idx, weights=num)
    per_den = np.bincount(idx, weights=den)
    if resamples < 1 or per_den.sum() <= 0:
        return float("nan"), float("nan")
    pick = np.random.default_rng(seed).integers(0, len(per_den), (resamples, len(per_den)))
    d = per_den[pick].sum(axis=1)
    ratio = per_num[pick].sum(axis=1)[d > 0] / d[d > 0]
    lo, hi = np.quantile(ratio, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def quantile_levels(level: float) -> Sequence[float]:
    """The lower and upper quantile levels of a central band (0.8 -> 0.1, 0.9)."""
    return ((1 - level) / 2, (1 + level) / 2)
