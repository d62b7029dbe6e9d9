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
from hrpred.clean.numeric import median


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
        use = baselines(stats, eligible, coef, k, cfg)
    return coef, k, pop


def deficits(stats: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """Each workout's mean expected-minus-observed HR over its level samples, from its
    level statistics and its model's coefficients (NaN without level samples)."""
    npts = stats[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = stats[:, [1, 2, 6]] / npts[:, None]
    return coef[:, 0] + coef[:, 1] * mean[:, 0] + coef[:, 2] * mean[:, 1] - mean[:, 2]


def baselines(
    stats: np.ndarray, eligible: np.ndarray, coef: np.ndarray, k: np.ndarray, cfg: DetectorConfig
) -> np.ndarray:
    """The eligible workouts that do not read far below their model (the baselines)."""
    thr = np.array([full_threshold(int(kk), cfg) for kk in k])
    return eligible & ~(deficits(stats, coef) > thr)


def _level_means(stats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean HR [N], [1, mean drive, mean hours] [N, 3]) of each workout's level samples
    (zeros without any): a run reads a - c . b below model c."""
    npts = np.maximum(stats[:, 0], 1.0)
    b = np.column_stack((np.ones(stats.shape[0]), stats[:, 1] / npts, stats[:, 2] / npts))
    return stats[:, 6] / npts, b


def _runs_in_time(user_ids: np.ndarray, starts: np.ndarray) -> list[np.ndarray]:
    """The workouts' positions grouped by user, each group in start order."""
    order = np.lexsort((starts, user_ids))
    return np.split(order, np.flatnonzero(np.diff(user_ids[order])) + 1)


def local_levels(
    user_ids: np.ndarray,
    starts: np.ndarray,
    stats: np.ndarray,
    use: np.ndarray,
    coef: np.ndarray,
    cfg: DetectorConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """(coef with the intercept moved to the runner's level of the time, spread of the
    runner's deficits in BPM) of every workout.

    A runner's HR at a given pace moves over months and years (fitness, breaks, devices): the
    level that matters is that of the baselines nearest in time. The intercept moves by the
    mean residual of the user's level_local_runs baselines before and after the workout
    (itself left out) under the workout's own model, shrunk by level_local_prior runs' worth.
    The spread is 1.4826 x the median absolute deficit of the user's baselines against their
    local models (NaN with fewer than full_spread_min_runs of them): how far the runner's own
    days scatter, which widens the full-offset threshold (`full_threshold`)."""
    n = user_ids.size
    out = coef.copy()
    spread = np.full(n, np.nan)
    if n == 0:
        return out, spread
    h, kappa = cfg.level_local_runs, cfg.level_local_prior
    a, b = _level_means(stats)  # residual of baseline j under model c: a_j - c . b_j
    for g in _runs_in_time(user_ids, starts):
        base = g[use[g]]
        if base.size == 0:
            continue
        ca = np.concatenate(([0.0], np.cumsum(a[base])))
        cb = np.vstack((np.zeros((1, 3)), np.cumsum(b[base], axis=0)))
        pos = np.searchsorted(starts[base], starts[g], side="left")
        lo = np.maximum(pos - h, 0)
        hi = np.minimum(pos + h + use[g], base.size)  # a baseline's own slot is skipped below
        sa, sb, m = ca[hi] - ca[lo], cb[hi] - cb[lo], (hi - lo).astype(np.float64)
        own = use[g]
        sa = sa - np.where(own, a[g], 0.0)
        sb = sb - np.where(own[:, None], b[g], 0.0)
        m = m - own
        shift = (sa - np.einsum("ij,ij->i", coef[g], sb)) / (m + kappa)
        out[g, 0] = coef[g, 0] + shift
        if base.size >= cfg.full_spread_min_runs:
            d = deficits(stats[g], out[g])[use[g]]
            spread[g] = 1.4826 * median(np.abs(d))
    return out, spread


def later_deficits(
    user_ids: np.ndarray,
    starts: np.ndarray,
    stats: np.ndarray,
    eligible: np.ndarray,
    coef: np.ndarray,
    runs: int,
) -> np.ndarray:
    """Every workout's median deficit of the user's next `runs` eligible workouts (starting
    strictly later) under the workout's own model `coef` (NaN without any, or with runs 0).

    A sensor under-reading is one run's; a level that fell (a new watch, a break, fitness)
    reads low in the runs after it too: the full-offset test asks this (`full_persist_share`).
    """
    n = user_ids.size
    out = np.full(n, np.nan)
    if n == 0 or runs <= 0:
        return out
    a, b = _level_means(stats)
    for g in _runs_in_time(user_ids, starts):
        e = g[eligible[g] & (stats[g, 0] > 0)]
        if e.size == 0:
            continue
        pos = np.searchsorted(starts[e], starts[g], side="right")
        idx = pos[:, None] + np.arange(runs)[None, :]
        have = idx < e.size
        j = e[np.minimum(idx, e.size - 1)]
        d = np.einsum("ik,ijk->ij", coef[g], b[j]) - a[j]
        d[~have] = np.nan
        some = have.any(axis=1)
        out[g[some]] = np.nanmedian(d[some], axis=1)
    return out


def _loo_quantile(values: np.ndarray, q: float) -> tuple[np.ndarray, int]:
    """(q-quantile of the other values, for each value; their count) of one group's finite
    values (linear interpolation, numpy's default)."""
    n = values.size
    m = n - 1
    if m < 1:
        return np.full(n, np.nan), 0
    order = np.argsort(values, kind="stable")
    s = values[order]
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    pos = q * (m - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, m - 1)
    frac = pos - lo
    v_lo = s[lo + (lo >= rank)]
    v_hi = s[hi + (hi >= rank)]
    return v_lo * (1.0 - frac) + v_hi * frac, m


def warmup_templates(user_ids: np.ndarray, profiles: np.ndarray, cfg: DetectorConfig) -> np.ndarray:
    """Every workout's usual warm-up [N, bins]: per warmup_bins_s bin, the warmup_quantile of
    the shortfall of the user's OTHER runs (leave-one-out), shrunk toward the population's
    quantile by warmup_prior_runs runs' worth; the population's alone for a user's only run.
    Every run with a profile counts (a slow warm-up is the runner's, not a fault)."""
    n, bins = profiles.shape if profiles.ndim == 2 else (0, 0)
    out = np.full((n, bins), np.nan)
    if n == 0:
        return out
    q, k0 = cfg.warmup_quantile, cfg.warmup_prior_runs
    order = np.argsort(user_ids, kind="stable")
    bounds = np.flatnonzero(np.diff(user_ids[order])) + 1
    groups = np.split(order, bounds)
    for b in range(bins):
        col = profiles[:, b]
        ok = np.isfinite(col)
        if not ok.any():
            continue
        pop = float(np.quantile(col[ok], q))
        out[:, b] = pop
        for g in groups:
            have = g[ok[g]]
            if have.size == 0:
                continue
            own, m = _loo_quantile(col[have], q)
            if m:
                out[have, b] = (m * own + k0 * pop) / (m + k0)
            # runs without this bin: every one of the user's runs that has it
            lacking = g[~ok[g]]
            if lacking.size:
                m = have.size
                out[lacking, b] = (m * float(np.quantile(col[have], q)) + k0 * pop) / (m + k0)
    return out
