"""The one averaging rule of personalisation: a shrunk, recency-weighted mean over earlier runs.

For a run w with earlier runs h_1..h_K (its `k` most recent usable ones, most recent first,
`days_before` d_j), each earlier run contributes one value v_j (its mean residual vs the
population prediction for the offset, vs the network's personalised prediction for the
residual correction, its band score minus the reference for the runner scale) with a
per-run weight w_j = exp(-ln 2 * d_j / half_life_days) (per run, not per step: a long run
says no more about the runner's level than a short one). The rule is

    rule(w) = sum_j w_j v_j / (sum_j w_j + shrink)

the weighted mean shrunk by n_eff / (n_eff + shrink), n_eff = sum_j w_j (a prior worth `shrink`
runs at 0, the population). No usable earlier run: 0. It reads only earlier runs' values,
never w's own HR: honest by construction, and it needs no training.
"""

from __future__ import annotations

import numpy as np

from hrpred.personal.config import RuleConfig

LN2 = float(np.log(2.0))


def shrunk_mean(cfg: RuleConfig, values: np.ndarray, days_before: np.ndarray) -> tuple[float, int]:
    """The rule over earlier runs' `values` [n] with their `days_before` [n], most recent
    first (nan values are runs without one: skipped before taking the `k` most recent).
    Returns (the rule's value, how many runs it read)."""
    v = np.asarray(values, dtype=np.float64)
    d = np.asarray(days_before, dtype=np.float64)
    ok = np.isfinite(v)
    v, d = v[ok][: cfg.k], d[ok][: cfg.k]
    if len(v) == 0:
        return 0.0, 0
    w = np.exp(-LN2 * d / cfg.half_life_days)
    return float((w * v).sum() / (w.sum() + cfg.shrink)), len(v)
