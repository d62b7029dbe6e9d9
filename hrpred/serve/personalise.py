"""A runner's own earlier runs -> a personalised prediction of one run, with a bundle.

The serving side of `hrpred.personal.engine` (evaluate runs the same engine over the data
tree): `hrpred profile` calls `personalise` for each of the runner's runs in start order (with
the runs before it) to make the record each run leaves, and `hrpred predict --profile` calls it
for the run being predicted (with the profile's runs that started strictly before it). The
plan decides which earlier runs still describe the runner (after the latest level change); the
network reads their summaries as context (its `k_max` most recent), and the plan's offset,
residual correction, runner scale and headline weights do the rest. Nothing here reads the HR
of the run being predicted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hrpred.bundle.runtime import Bundle
from hrpred.personal.context import build_context
from hrpred.personal.engine import Curves, Plan, RunRecord, personal_curves, plan_run
from hrpred.personal.summaries import Summaries

DAY_S = 86400.0


@dataclass(frozen=True)
class Personalised:
    """One run personalised: its plan, curves, the network's curve and spread with the plan's
    context (the population ones for a bundle without a history network) and the number of
    context entries the network read."""

    plan: Plan
    curves: Curves
    network: np.ndarray | None
    spread: np.ndarray
    context_runs: int


def earlier_runs(starts: np.ndarray, start_s: float, limit: int) -> np.ndarray:
    """Indices of the runs that started strictly before `start_s`, the `limit` most recent,
    in start order."""
    s = np.asarray(starts, dtype=np.float64)
    idx = np.flatnonzero(s < float(start_s))
    idx = idx[np.argsort(s[idx], kind="stable")]
    return idx[len(idx) - limit :] if limit < len(idx) else idx


def _context(
    bundle: Bundle, summaries: Summaries, starts: np.ndarray, used: np.ndarray, start_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """The network's context [K, C] + mask [K] from the runs `used` (most recent first)."""
    k_max = int((bundle.history or {}).get("k_max", 0))
    table = pd.DataFrame(
        {
            "workout_id": np.zeros(len(used), dtype=np.int64),
            "hist_workout_id": summaries.workout_ids[used],
            "rank": np.arange(1, len(used) + 1, dtype=np.int64),
            "days_before": (float(start_s) - starts[used]) / DAY_S,
        }
    )
    ctx = build_context(np.array([0]), table, summaries, k_max)
    return ctx.values[0], ctx.mask[0]


def personalise(
    bundle: Bundle,
    summaries: Summaries,
    starts: np.ndarray,
    records: list[RunRecord],
    earlier: np.ndarray,
    start_s: float,
    features: np.ndarray,
    population: np.ndarray,
    population_spread: np.ndarray,
    runner_ref: float | None = None,
) -> Personalised:
    """Personalise a run starting at `start_s` (unscaled grid features [n, F], its population
    prediction and spread) from the runner's runs `earlier` (indices into `summaries` (ids
    in run order), `starts` and `records`, strictly earlier; `earlier_runs`)."""
    recs = [records[i] for i in earlier]
    has_network = bundle.history is not None
    plan = plan_run(bundle.personal, recs, start_s, runner_ref, has_network)
    network, spread, n_ctx = None, np.asarray(population_spread), 0
    if has_network:
        used = np.asarray(earlier, dtype=np.int64)[list(plan.positions)]
        context = _context(bundle, summaries, starts, used, start_s)
        network, spread = bundle.predict_spread(features, context=context)
        n_ctx = int(bundle.context_counts(context, 1)[0])
    curves = personal_curves(plan, population, network)
    return Personalised(plan, curves, network, np.asarray(spread), n_ctx)
