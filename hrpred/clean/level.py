"""The expected-HR level model of the detector: HR ~ coef . [1, drive, hours], the drive being
the grade-adjusted speed ("equivalent speed") smoothed over `clean.detector.level_tau_s`.
A workout's level statistics are sums (`level_stats`), so pass 1 collects them per workout
and pass 2 fits a user's model from their other workouts (`normal_equations`,
`hrpred.clean.population`); `full_threshold` is how far below it a whole run must read to be
a full offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hrpred.clean.config import DetectorConfig
from hrpred.clean.numeric import diff, median
from hrpred.clean.signal import grade_from_altitude

N_LEVEL_STATS = 9  # n, sd, st, sdd, sdt, stt, sh, sdh, sth


@dataclass
class LevelModel:
    """What the runner's other workouts say about one workout: expected HR ~ coef . [1,
    drive, hours], and their usual warm-up."""

    coef: np.ndarray  # (3,)
    k: int  # number of the user's other workouts used (0 = population)
    warmup: np.ndarray | None = None  # usual warm-up shortfall per warmup_bins_s bin (a
    # quantile of the other runs', `hrpred.clean.population.warmup_templates`); None: none
    spread_bpm: float = float("nan")  # how far the runner's days scatter about their level
    # (`hrpred.clean.population.local_levels`; NaN: unknown)
    later_deficit_bpm: float = float("nan")  # median deficit of the runner's next runs under
    # this model (`hrpred.clean.population.later_deficits`; NaN: no later runs)


def equivalent_speed(
    speed: np.ndarray, alt: np.ndarray, ts: np.ndarray, cfg: DetectorConfig
) -> np.ndarray:
    """Grade-adjusted speed (km/h): climbing costs more than the flat, descending less."""
    g = grade_from_altitude(alt, speed, ts, cfg.grade_window_s)
    cost = np.where(g > 0, cfg.grade_cost_up, cfg.grade_cost_down)
    return speed * np.maximum(1.0 + cost * g, 0.3)


def robust_noise(e: np.ndarray) -> float:
    """White-noise SD of a residual from its first differences (MAD), >= 0.5 BPM."""
    if e.size < 3:
        return 1.0
    return max(1.4826 * median(np.abs(diff(e))) / np.sqrt(2.0), 0.5)


def level_stats(d: np.ndarray, t: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Sufficient statistics of the level regression h ~ [1, d, t] over given samples."""
    return np.array(
        [
            d.size,
            d.sum(),
            t.sum(),
            (d * d).sum(),
            (d * t).sum(),
            (t * t).sum(),
            h.sum(),
            (d * h).sum(),
            (t * h).sum(),
        ]
    )


def normal_equations(stats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(X'X, X'y) of the level regression from stacked stats [..., N_LEVEL_STATS]."""
    n, sd, st, sdd, sdt, stt, sh, sdh, sth = np.moveaxis(stats, -1, 0)
    xtx = np.stack(
        [np.stack([n, sd, st], -1), np.stack([sd, sdd, sdt], -1), np.stack([st, sdt, stt], -1)],
        -2,
    )
    xty = np.stack([sh, sdh, sth], -1)
    return xtx, xty


def full_threshold(k: int, cfg: DetectorConfig, spread_bpm: float = float("nan")) -> float:
    """Deficit (BPM) above which a workout reads low as a whole: wider with fewer of the
    user's other workouts (the user's level is less certain), population-wide with none,
    and at least full_spread_z times the runner's own spread of days (`spread_bpm`)."""
    if k <= 0:
        return cfg.full_pop_min_offset_bpm
    thr = cfg.full_min_offset_bpm * float(np.sqrt(1.0 + cfg.full_few_workouts / k))
    if np.isfinite(spread_bpm):
        thr = max(thr, cfg.full_spread_z * spread_bpm)
    return thr
