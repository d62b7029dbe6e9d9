"""Level changes in a runner's history: which earlier runs still describe the runner.

A runner's HR at a given effort moves: slowly (fitness) and in steps (a new watch or strap, a
long break, a training block). Each earlier run j leaves its mean residual r_j = mean(recorded -
population prediction) over its valid steps: the runner's level on that day plus run-to-run
scatter. A change is a point in that sequence after which the level differs.

The test (a two-segment mean shift, the likelihood-ratio statistic of a Gaussian change in
mean): for a candidate with the `a` most recent runs after it and up to `max_runs` runs before
it, z^2 = (mean_after - mean_before)^2 / (s^2 (1/a + 1/b)), with s^2 the runner's run-to-run
variance (half the mean squared successive difference, each capped at 3 sigma_0, pooled with
a prior `noise_bpm`^2 worth `noise_prior_runs` runs). The most recent change is the candidate
with the largest z^2 among those with z^2 >= `min_score` and |shift| >= `min_jump_bpm`, for
a = 1..`max_runs`; the runs after it are the ones that still describe the runner. One run far
from the rest is only a candidate with a = 1: a single odd day rarely passes `min_score`, two
in a row do.

It reads only the earlier runs' residuals (never the predicted run's HR) and needs no
training. Evaluate and serving call the same function (`hrpred.personal.engine`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hrpred.personal.config import ChangeConfig


@dataclass(frozen=True)
class Change:
    """The most recent level change among a runner's earlier runs."""

    runs_since: int  # earlier runs after the change (all of them when none was found)
    found: bool  # a change was found
    shift_bpm: float  # level after minus level before (0 when none)
    score: float  # its z^2 (0 when none)


def run_noise(cfg: ChangeConfig, residuals: np.ndarray) -> float:
    """The runner's run-to-run sd of the mean residual: successive differences (each
    squared difference / 2 capped at (3 noise_bpm)^2), pooled with the prior."""
    r = np.asarray(residuals, dtype=np.float64)
    half_sq = np.minimum(np.diff(r) ** 2 / 2.0, (3.0 * cfg.noise_bpm) ** 2)
    total = cfg.noise_prior_runs * cfg.noise_bpm**2 + half_sq.sum()
    count = cfg.noise_prior_runs + len(half_sq)
    return float(np.sqrt(total / count)) if count > 0 else cfg.noise_bpm


def latest_change(cfg: ChangeConfig, residuals: np.ndarray) -> Change:
    """The most recent change in `residuals`, the earlier runs' mean residuals in time order
    (oldest first; nan for a run without a valid step, left out)."""
    r = np.asarray(residuals, dtype=np.float64)
    r = r[np.isfinite(r)]
    n = len(r)
    none = Change(n, False, 0.0, 0.0)
    if cfg.max_runs == 0 or n < 3:
        return none
    s2 = run_noise(cfg, r[-2 * cfg.max_runs :]) ** 2
    best = none
    for a in range(1, min(cfg.max_runs, n - 2) + 1):
        after = r[n - a :]
        before = r[max(0, n - a - cfg.max_runs) : n - a]
        shift = float(after.mean() - before.mean())
        score = shift * shift / (s2 * (1.0 / a + 1.0 / len(before)))
        if score >= cfg.min_score and abs(shift) >= cfg.min_jump_bpm and score > best.score:
            best = Change(a, True, shift, float(score))
    return best
