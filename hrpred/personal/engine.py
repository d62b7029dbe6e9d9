"""One personalisation for evaluate and serving: earlier runs -> plan -> curves -> record.

A runner's earlier runs each leave a `RunRecord` (valid steps; sums of recorded minus the
population prediction and minus the learned network's prediction; the band score; each
predictor's absolute error as it was served for that run). For a new run, `plan_run` turns
the records of the runs that started strictly before it into a `Plan`:

1. `change`: the most recent level change in the earlier runs' population residuals
   (`hrpred.personal.change`); the runs after it are the ones that still describe the runner
   (`used`: all of them without a change). Only they feed steps 2-4 and the network's context.
2. `offset`: the rule (`hrpred.personal.rules`, params `personal.offset`) over their mean
   population residuals: the offset prediction is population + offset.
3. `residual`: the rule (`personal.residual`) over their mean residuals vs the network's own
   personalised predictions: the learned prediction is network(context) + residual.
4. `factor`: the band's runner scale, 1 + rule(score - ref) / ref over their band scores
   (`personal.runner_scale`; ref: the validation workouts' mean score, in the calibration),
   times `personal.change.break_widen` (with or without the runner scale) when the run comes
   `break_days` or more after the latest earlier run: a long break is when a level moves (a new watch, lost or regained
   fitness) and the earlier runs cannot show it yet.
5. `weights`: the headline forecaster (`personal.headline`) over ALL earlier runs: each
   predictor weighs exp(-eta * its discounted MAE on them), normalised; the headline is the
   weighted mean of the population, offset and learned curves. No earlier run: equal weights,
   and all three curves are the population prediction (the network without context).

`personal_curves` applies a plan to a run's population and network curves; `record_run`
scores a finished run for the runs after it. Evaluate (`hrpred.evaluate.personal`) and
`hrpred profile`/`predict` (`hrpred.serve`) call exactly these. Nothing here reads the HR of
the run being predicted: a plan is made from earlier records only, and a record is made after.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from hrpred.personal.change import Change, latest_change
from hrpred.personal.config import ChangeConfig, HeadlineConfig, PersonalConfig
from hrpred.personal.rules import shrunk_mean

PREDICTORS = ("population", "offset", "learned")
DAY_S = 86400.0


@dataclass(frozen=True)
class RunRecord:
    """What a finished run leaves for the runner's later runs (sums over its valid steps)."""

    start_s: float  # Unix s
    n: int  # valid steps
    cold_sum: float  # sum of recorded - population prediction
    learned_sum: float  # sum of recorded - the network's prediction (its own context)
    score_sq: float  # sum of ((recorded - headline) / spread)^2: the band's runner score
    abs_sum: tuple[float, float, float]  # sum of |recorded - p| for p in PREDICTORS, as served

    def mean(self, what: str) -> float:
        """Mean residual `cold` or `learned` (nan without a valid step)."""
        s = self.cold_sum if what == "cold" else self.learned_sum
        return s / self.n if self.n > 0 else float("nan")

    @property
    def score(self) -> float:
        """The band's runner-scale score: RMS of (recorded - headline) / spread."""
        return float(np.sqrt(self.score_sq / self.n)) if self.n > 0 else float("nan")

    def maes(self) -> np.ndarray:
        """Each predictor's MAE on this run [3] (nan without a valid step)."""
        a = np.asarray(self.abs_sum, dtype=np.float64)
        return a / self.n if self.n > 0 else np.full(len(PREDICTORS), np.nan)


@dataclass(frozen=True)
class Plan:
    """How a run is personalised from its earlier runs (see the module doc)."""

    earlier: int  # earlier runs with a valid step
    change: Change
    offset: float  # BPM
    offset_runs: int
    residual: float  # BPM
    residual_runs: int
    factor: float  # the band's runner scale
    factor_runs: int
    weights: tuple[float, float, float]  # headline weights of PREDICTORS
    gap_days: float | None = None  # days since the latest earlier run (None without one)
    positions: tuple[int, ...] = ()  # in the `earlier` it was made from: the runs it uses,
    #                                  most recent first (detect's; the network's context)

    @property
    def used(self) -> int:
        """Earlier runs after the latest level change (all without one): the context."""
        return self.change.runs_since


def headline_weights(
    cfg: HeadlineConfig, records: Sequence[RunRecord], learned: bool
) -> tuple[float, float, float]:
    """Weights of PREDICTORS (sum 1) from their discounted MAEs on `records` (oldest first);
    without a learned network its weight is 0."""
    active = np.array([True, True, learned])
    maes = np.array([r.maes() for r in records if r.n > 0]).reshape(-1, len(PREDICTORS))
    if len(maes) == 0:
        w = active.astype(np.float64)
    else:
        discount = cfg.decay ** np.arange(len(maes) - 1, -1, -1, dtype=np.float64)
        loss = (discount[:, None] * maes).sum(axis=0)
        loss = np.where(active, loss, np.inf)
        w = np.exp(-cfg.eta * (loss - loss[active].min()))
    w = w / w.sum()
    return float(w[0]), float(w[1]), float(w[2])


def detect(cfg: ChangeConfig, earlier: Sequence[RunRecord]) -> tuple[Change, list[int]]:
    """The latest level change among `earlier` records (any order) and the positions in
    `earlier` of the runs after it (all runs with a valid step without one), most recent
    first: the runs a plan uses, and the network's context."""
    order = sorted((i for i, r in enumerate(earlier) if r.n > 0), key=lambda i: earlier[i].start_s)
    change = latest_change(cfg, np.array([earlier[i].mean("cold") for i in order]))
    return change, order[len(order) - change.runs_since :][::-1]


def _days(start_s: float, used: Sequence[RunRecord]) -> np.ndarray:
    return np.array([(start_s - r.start_s) / DAY_S for r in used], dtype=np.float64)


def after_break(cfg: ChangeConfig, plan: Plan) -> bool:
    """The run comes `break_days` or more after the runner's latest earlier run."""
    return plan.gap_days is not None and plan.gap_days >= cfg.break_days


def _widen(cfg: ChangeConfig, plan: Plan) -> float:
    return cfg.break_widen if after_break(cfg, plan) else 1.0


def runner_factor(
    cfg: PersonalConfig, plan: Plan, earlier: Sequence[RunRecord], start_s: float, ref: float
) -> Plan:
    """`plan` (made from the same `earlier`) with the band's runner scale: 1 + rule(score -
    ref) / ref over the scores of the runs it uses (`ref` > 0: the calibration's reference
    score), times `break_widen` after a long break."""
    used = [earlier[i] for i in plan.positions]
    dev, n = shrunk_mean(
        cfg.runner_scale, np.array([r.score - ref for r in used]), _days(start_s, used)
    )
    return replace(plan, factor=max(1.0 + dev / ref, 0.0) * _widen(cfg.change, plan), factor_runs=n)


def plan_run(
    cfg: PersonalConfig,
    earlier: Sequence[RunRecord],
    start_s: float,
    runner_ref: float | None = None,
    learned: bool = True,
    detected: tuple[Change, list[int]] | None = None,
) -> Plan:
    """The plan of a run starting at `start_s` from the records of runs that started before it
    (any order; the caller passes only strictly earlier ones, at most the history it keeps).
    `runner_ref`: the calibration's reference score (None: no runner scale, factor 1, or
    break_widen after a long break);
    `learned`: the bundle has a history network (else the learned predictor is left out);
    `detected`: `detect(cfg.change, earlier)` when the caller has it already (it reads only
    the runs' start times and cold residuals)."""
    change, positions = detect(cfg.change, earlier) if detected is None else detected
    used = [earlier[i] for i in positions]
    days = _days(start_s, used)
    offset, n_off = shrunk_mean(cfg.offset, np.array([r.mean("cold") for r in used]), days)
    residual, n_res = 0.0, 0
    if learned:
        residual, n_res = shrunk_mean(
            cfg.residual, np.array([r.mean("learned") for r in used]), days
        )
    starts = [r.start_s for r in earlier if r.n > 0]
    plan = Plan(
        earlier=len(starts),
        change=change,
        offset=offset,
        offset_runs=n_off,
        residual=residual,
        residual_runs=n_res,
        factor=1.0,  # times break_widen after a long break (below)
        factor_runs=0,
        weights=headline_weights(cfg.headline, sorted(earlier, key=lambda r: r.start_s), learned),
        gap_days=(start_s - max(starts)) / DAY_S if starts else None,
        positions=tuple(positions),
    )
    if runner_ref is not None and runner_ref > 0:
        return runner_factor(cfg, plan, earlier, start_s, runner_ref)
    return replace(plan, factor=_widen(cfg.change, plan))


@dataclass(frozen=True)
class Curves:
    """A run's predicted curves (BPM, float64, one shape)."""

    population: np.ndarray
    offset: np.ndarray
    learned: np.ndarray
    headline: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        """The curves by name (PREDICTORS, then headline)."""
        return {p: getattr(self, p) for p in (*PREDICTORS, "headline")}


def personal_curves(
    plan: Plan, population: np.ndarray, network: np.ndarray | None = None
) -> Curves:
    """The plan applied to a run's population prediction and the network's prediction with
    the plan's context (None: no history network; the learned curve is then the offset one,
    weight 0)."""
    pop = np.asarray(population, dtype=np.float64)
    offset = pop + plan.offset
    learned = offset if network is None else np.asarray(network, np.float64) + plan.residual
    w = plan.weights
    headline = w[0] * pop + w[1] * offset + w[2] * learned
    return Curves(pop, offset, learned, headline)


def record_run(
    start_s: float,
    recorded: np.ndarray,
    valid: np.ndarray,
    curves: Curves,
    network: np.ndarray | None = None,
    spread: np.ndarray | None = None,
) -> RunRecord:
    """The record a finished run leaves: sums over its valid steps (`network`/`spread`: the
    network's curve with the run's own context and its spread; None without a history
    network: the learned sums are those of the population)."""
    v = np.asarray(valid, dtype=bool) & np.isfinite(recorded)
    y = np.asarray(recorded, dtype=np.float64)[v]
    pop = curves.population[v]
    net = pop if network is None else np.asarray(network, np.float64)[v]
    if spread is None:
        score_sq = 0.0
    else:
        z = (y - curves.headline[v]) / np.asarray(spread, np.float64)[v]
        score_sq = float((z * z).sum())
    return RunRecord(
        start_s=float(start_s),
        n=int(v.sum()),
        cold_sum=float((y - pop).sum()),
        learned_sum=float((y - net).sum()),
        score_sq=score_sq,
        abs_sum=tuple(float(np.abs(y - getattr(curves, p)[v]).sum()) for p in PREDICTORS),
    )
