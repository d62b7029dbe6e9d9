"""The fastest pace plan whose headline predicted HR stays under a cap after the warm-up.

"Under the cap": the headline HR (`hrpred.serve.plan.PlannedRun.hr`, the most personal
prediction) is at or below the cap on at least CAP_SHARE of the planned points from the end of
the warm-up on. The search runs the model on candidate plans (`evaluate`: speeds -> its
prediction) in three phases:
1. level: the plan's shape (even effort over the grades, or the pace plan given) scaled by
   one factor, the largest that holds the cap (bracketing by LEVEL_STEP, then bisection to
   LEVEL_TOL); the HR's response to speed (BPM per unit of log speed) is fitted on the way;
2. shape: REFINE_ROUNDS rounds of slowing down where the cap is hit and speeding up where HR
   stays below it: each segment's log speed moves by GAIN x (the highest HR from entering it
   until LAG_S after leaving it - (cap - CAP_MARGIN_BPM)) / that response, the moves averaged
   over SMOOTH_M of route (a runner paces stretches, not metres); segments run before the end
   of the warm-up move with the first one after it. At the plan's level (the median over
   segments of speed / the shape's relative speed), no segment goes faster than the shape
   allows where the shape is faster than its median (downhill: the runner does not race
   down a slope because the model's HR would allow it; the grade factor's downhill cap,
   `hrpred.serve.pacing`, holds), nor faster than that level elsewhere (a climb is not run
   faster than the flat); within that, the model's HR decides, so the runner slows down where
   the cap binds. The fastest candidate under the cap wins;
3. final level: that shape scaled by the largest factor that holds the cap (bisection to
   FINAL_TOL), so the plan is not needlessly slow.
Speeds stay within [MIN_SPEED_KMH, the bundle's cap] and, when a pace plan is given, never
above it (the cap only slows it down). A cap not held even at MIN_SPEED_KMH everywhere is
reported (`met` False) with that slowest plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hrpred.serve.plan import MIN_SPEED_KMH, PlannedRun
from hrpred.serve.route import SEGMENT_M
from hrpred.timeseries import moving_average

CAP_SHARE = 0.95  # the cap holds on at least this share of the points after the warm-up
LEVEL_STEP = 1.25  # bracketing factor of the level search
LEVEL_TOL = 0.01  # the level's bisection stops within this relative step
FINAL_TOL = 0.0025  # ... and the final level's
REFINE_ROUNDS = 8  # shape refinement rounds
GAIN = 0.7  # share of the estimated speed change applied per round
LAG_S = 60.0  # HR answers a segment's speed within this many seconds
CAP_MARGIN_BPM = 0.5  # the shape refinement aims this far below the cap
SMOOTH_M = 200.0  # speed changes are averaged over this much of the route (m)
MIN_RESPONSE = 10.0  # BPM per unit of log speed: the weakest response assumed
MAX_BRACKET = 30  # bracketing steps (LEVEL_STEP ** 30 ~ 800x)

Evaluate = Callable[[np.ndarray], PlannedRun]


@dataclass
class CapResult:
    """The chosen plan's run and how it holds the cap: `share` of the points after the
    warm-up at or below it, `met` (share >= CAP_SHARE), `limited_by` (`cap`: the cap set the
    pace; `pace`: the pace plan given already holds it; `speed`: the bundle's speed cap; `walk`:
    not held even at MIN_SPEED_KMH) and the number of model runs."""

    run: PlannedRun
    cap_bpm: float
    warmup_s: float
    share: float
    met: bool
    limited_by: str
    evaluations: int


def share_under(run: PlannedRun, cap_bpm: float, warmup_s: float) -> float:
    """Share of the run's points from `warmup_s` on whose headline HR is at most the cap."""
    after = run.t_s >= warmup_s
    if not after.any():
        return 1.0
    return float(np.mean(run.hr[after] <= cap_bpm))


class _Search:
    """The model runs of one search, their count and the HR response fitted on the way."""

    def __init__(self, evaluate: Evaluate, cap: float, warmup_s: float, limit: np.ndarray):
        self.evaluate, self.cap, self.warmup_s, self.limit = evaluate, cap, warmup_s, limit
        self.count = 0
        self.levels: list[tuple[float, float]] = []  # (log level, mean HR after the warm-up)

    def speeds(self, base: np.ndarray, level: float) -> np.ndarray:
        return np.minimum(np.maximum(base * level, MIN_SPEED_KMH), self.limit)

    def run(self, speeds: np.ndarray) -> PlannedRun:
        self.count += 1
        return self.evaluate(speeds)

    def ok(self, run: PlannedRun) -> bool:
        return share_under(run, self.cap, self.warmup_s) >= CAP_SHARE

    def largest_level(
        self, base: np.ndarray, first: PlannedRun, step: float, tol: float
    ) -> tuple[PlannedRun, str]:
        """The run at the largest level of `base` under the cap (`first`: level 1's run) and
        what limits it (`cap`, `speed`: every segment at its limit, `walk`: not even at the
        slowest)."""
        lo: tuple[float, PlannedRun] | None = None
        hi: tuple[float, PlannedRun] | None = None
        level, run = 1.0, first
        for _ in range(MAX_BRACKET):
            self._note(level, run)
            speeds = self.speeds(base, level)
            if self.ok(run):
                lo = (level, run)
                if hi is not None:
                    break
                if np.all(speeds >= self.limit):
                    return run, "speed"
                level *= step
            else:
                hi = (level, run)
                if lo is not None:
                    break
                if np.all(speeds <= MIN_SPEED_KMH):
                    return run, "walk"
                level /= step
            run = self.run(self.speeds(base, level))
        if lo is None:
            return run, "walk"
        if hi is None:
            return lo[1], "speed"
        while hi[0] / lo[0] > 1.0 + tol:
            mid = float(np.sqrt(lo[0] * hi[0]))
            run = self.run(self.speeds(base, mid))
            self._note(mid, run)
            lo, hi = ((mid, run), hi) if self.ok(run) else (lo, (mid, run))
        return lo[1], "cap"

    def _note(self, level: float, run: PlannedRun) -> None:
        after = run.t_s >= self.warmup_s
        if after.any():
            self.levels.append((float(np.log(level)), float(np.mean(run.hr[after]))))

    def response(self) -> float:
        """BPM per unit of log speed, fitted over the levels run (at least MIN_RESPONSE)."""
        if len(self.levels) < 2:
            return MIN_RESPONSE
        x, y = np.array(self.levels).T
        if np.ptp(x) <= 0:
            return MIN_RESPONSE
        return max(float(np.polyfit(x, y, 1)[0]), MIN_RESPONSE)


def segment_response(run: PlannedRun, warmup_s: float, step_s: float) -> np.ndarray:
    """Per course segment, the highest headline HR from entering it until LAG_S after leaving
    it, over the points after the warm-up (NaN where there is none)."""
    t, hr = run.t_s, np.where(run.t_s >= warmup_s, run.hr, -np.inf)
    width = int(np.ceil(LAG_S / step_s)) + 2
    padded = np.r_[hr, np.full(width - 1, -np.inf)]
    ahead = np.lib.stride_tricks.sliding_window_view(padded, width).max(axis=1)
    first = np.searchsorted(t, run.timing.leave_s[:-1], side="left")
    out = ahead[np.clip(first, 0, t.size - 1)]
    out[first >= t.size] = -np.inf
    return np.where(np.isfinite(out), out, np.nan)


def cap_search(
    evaluate: Evaluate,
    shape: np.ndarray,
    upper: np.ndarray | None,
    cap_bpm: float,
    warmup_s: float,
    max_kmh: float,
    step_s: float,
) -> CapResult:
    """The fastest plan under the cap (module doc): `shape` the speeds whose level is searched
    first, `upper` the pace plan the result may not exceed (None: only the speed cap)."""
    limit = np.full(shape.shape, float(max_kmh))
    if upper is not None:
        limit = np.minimum(limit, upper)
    search = _Search(evaluate, cap_bpm, warmup_s, limit)
    first = search.run(search.speeds(shape, 1.0))
    if upper is not None and search.ok(first) and np.allclose(first.plan.speed_kmh, upper):
        return _result(search, first, "pace")
    best, limited = search.largest_level(shape, first, LEVEL_STEP, LEVEL_TOL)
    if limited != "cap":
        return _result(search, best, limited)
    response = search.response()
    relative = shape / float(np.median(shape))
    envelope = np.maximum(relative, 1.0)  # downhill as the shape allows, uphill as the flat
    log_speed = np.log(best.plan.speed_kmh)
    window = int(round(SMOOTH_M / SEGMENT_M)) | 1
    run = best
    for _ in range(REFINE_ROUNDS):
        h = segment_response(run, warmup_s, step_s)
        move = -GAIN * (h - (cap_bpm - CAP_MARGIN_BPM)) / response
        known = np.flatnonzero(np.isfinite(move))
        if not known.size:
            break
        move[: known[0]] = move[known[0]]  # the warm-up follows the first segment after it
        move = np.interp(np.arange(move.size), known, move[known])
        speeds = np.exp(log_speed + moving_average(move, window, False))
        level = float(np.median(speeds / relative))  # within the envelope at the plan's level
        log_speed = np.log(search.speeds(np.minimum(speeds, level * envelope), 1.0))
        run = search.run(np.exp(log_speed))
        if search.ok(run) and run.timing.finish_s < best.timing.finish_s:
            best = run
    final, limited = search.largest_level(best.plan.speed_kmh, best, 1.0 + 4 * FINAL_TOL, FINAL_TOL)
    return _result(search, final, limited)


def _result(search: _Search, run: PlannedRun, limited_by: str) -> CapResult:
    share = share_under(run, search.cap, search.warmup_s)
    return CapResult(
        run, search.cap, search.warmup_s, share, share >= CAP_SHARE, limited_by, search.count
    )
