"""Per-user expected-HR level models from pass-1 sufficient statistics.

Every workout is judged against a model fitted on the user's OTHER eligible workouts
(leave-one-out), so a workout never vouches for itself. Slopes are shrunk toward the
population's (ridge worth `level_ridge_points` samples), so a user with one or two other
workouts still gets a sensible slope while their own level sets the intercept. Workouts
that look offset in a first round are dropped from the baselines of the second round,
so one bad workout does not drag its siblings' baselines down.
"""

from __future__ import annotations

import numpy as np

from hrpred.clean.config import DetectorConfig
from hrpred.clean.level import full_threshold, normal_equations


def _solve(xtx: np.ndarray, xty: np.ndarray) -> np.ndarray:
    """Batched solve with a tiny jitter so degenerate sums never raise."""
    jitter = 1e-9 * np.eye(xtx.shape[-1])
    return np.linalg.solve(xtx + jitter, xty[..., None])[..., 0]


def population_model(stats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coef, ridge penalty matrix) of the pooled level regression over `stats` rows."""
    total = stats.sum(axis=0) if stats.size else np.zeros(9)
    if total[0] < 3:
        # No usable workouts: a flat model at a typical running HR.
        return np.array([150.0, 0.0, 0.0]), np.diag([0.0, 1.0, 1.0])
    xtx, xty = normal_equations(total)
    coef = _solve(xtx, xty)
    n = total[0]
    var_d = max(total[3] / n - (total[1] / n) ** 2, 1e-6)
    var_t = max(total[5] / n - (total[2] / n) ** 2, 1e-6)
    return coef, np.diag([0.0, var_d, var_t])


def level_models(
    user_ids: np.ndarray,
    stats: np.ndarray,
    eligible: np.ndarray,
    cfg: DetectorConfig,
    rounds: int = 2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leave-one-out level model of every workout.

    Returns (coef [N, 3], k [N] = other workouts used, pop_coef [3]).
    """
    n = user_ids.size
    if n == 0:
        return np.zeros((0, 3)), np.zeros(0, dtype=np.int64), np.zeros(3)
    _, inverse = np.unique(user_ids, return_inverse=True)
    n_users = int(inverse.max()) + 1
    use = eligible.copy()
    coef = np.zeros((n, 3))
    k = np.zeros(n, dtype=np.int64)
    pop = np.zeros(3)
    for _ in range(max(rounds, 1)):
        pop, penalty = population_model(stats[use])
        totals = np.zeros((n_users, stats.shape[1]))
        np.add.at(totals, inverse[use], stats[use])
        counts = np.bincount(inverse[use], minlength=n_users)
        own = np.where(use[:, None], stats, 0.0)
        loo = totals[inverse] - own
        k = counts[inverse] - use.astype(np.int64)
        xtx, xty = normal_equations(loo)
        ridge = cfg.level_ridge_points * penalty
        coef = _solve(xtx + ridge, xty + ridge @ pop)
        coef[k == 0] = pop
        # Round 2 baselines leave out workouts that read far below their model.
        npts = np.maximum(stats[:, 0], 1.0)
        expected = coef[:, 0] + coef[:, 1] * stats[:, 1] / npts + coef[:, 2] * stats[:, 2] / npts
        deficit = expected - stats[:, 6] / npts
        thr = np.array([full_threshold(int(kk), cfg) for kk in k])
        use = eligible & ~(deficit > thr)
    return coef, k, pop
