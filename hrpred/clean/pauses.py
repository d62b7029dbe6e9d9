"""Pauses: recording gaps where the runner stopped (the watch auto-paused), kept as pauses.

A gap is a step longer than `PAUSE_MIN_S` (below). Under `gap_action: pause` every gap is
judged (`judge_gaps`):
- a pause: the runner stood and HR recovered, so HR reads clearly lower after the gap, or the
  position moved on much further than one step (a recording gap of someone who ran on);
- a clock jump (the `timestamp_gap` fault): the clock skips forward while nothing else does,
  so HR carries on where it was and the position moves on by about one ordinary step.
Clock jumps reject the workout (reason `timestamp_gap`); pauses are kept and listed in the
clean workouts' `pause_step` / `pause_s` columns (hrpred/clean/outputs.py).

The model's view of pauses is the registry feature `since_pause` (seconds since the last
pause or the start), a function of the timestamps alone: a step longer than `PAUSE_MIN_S` is
a pause, in the clean data (where the clock jumps are gone) and at serving alike. It is a
feature definition, fixed like the time constants in `speed_ema_30s`, so a bundle's feature
means the same whatever the params say, and the one home of the pause threshold: the clean
stage's gaps (clean.rules.gap_action), export's mean active step (the bundle's
sampling.pause_s) and serving's pauses (hrpred/serve/predict.py) all use this constant.
This module imports only numpy so the feature code can use it without loading the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PAUSE_MIN_S = 60.0  # a step longer than this (s) is a pause: gap, since_pause, mean active step
EARTH_RADIUS_M = 6_371_000.0


def gap_steps(ts: np.ndarray, min_gap_s: float) -> np.ndarray:
    """Indices k of the first sample after every step longer than `min_gap_s` (int64)."""
    t = np.asarray(ts, dtype=np.float64)
    if t.size < 2:
        return np.zeros(0, dtype=np.int64)
    return (np.flatnonzero(np.diff(t) > min_gap_s) + 1).astype(np.int64)


def since_pause_s(
    ts: np.ndarray, resume: np.ndarray | None = None, min_gap_s: float = PAUSE_MIN_S
) -> np.ndarray:
    """Seconds since the first sample after the last pause, or since the start (float64).

    `resume` (bool, per sample: the first sample after a pause) overrides the timestamps'
    own long steps, for callers whose samples cover the pause (a resampled grid).
    """
    t = np.asarray(ts, dtype=np.float64)
    n = t.size
    if n == 0:
        return np.zeros(0)
    if resume is None:
        marks = np.zeros(n, dtype=bool)
        marks[gap_steps(t, min_gap_s)] = True
    else:
        marks = np.asarray(resume, dtype=bool).copy()
    marks[0] = True
    last = np.maximum.accumulate(np.where(marks, np.arange(n), 0))
    return t - t[last]


@dataclass(frozen=True)
class GapCall:
    """One gap, judged."""

    step: int  # first sample after the gap
    seconds: float  # length of the gap step (s)
    kind: str  # pause | clock_jump
    hr_drop_bpm: float  # HR before minus after (NaN when HR is unusable there)
    moved_steps: float  # distance across the gap in typical steps (NaN without positions)


def _median(x: np.ndarray) -> float:
    return float(np.median(x)) if x.size else float("nan")


def judge_gaps(
    ts: np.ndarray,
    hr: np.ndarray,
    lat: np.ndarray | None,
    lon: np.ndarray | None,
    steps: np.ndarray,
    hr_valid_min_bpm: float,
    pause_hr_drop_bpm: float,
    jump_max_move_steps: float,
) -> list[GapCall]:
    """Pause or clock jump for every gap (first samples after the gap: `steps`).

    A clock jump needs HR to carry on (before minus after below `pause_hr_drop_bpm`) and
    the position to move by at most `jump_max_move_steps` typical steps (the median step
    of the 10 steps either side), or no positions; every other gap is a pause, also when
    HR cannot tell (no usable sample on either side: give the runner the benefit of the
    doubt). HR before: median of the last 3 samples at or above `hr_valid_min_bpm` (NaN
    for unusable samples) within 6 samples and since the previous gap (fewer: HR cannot
    tell; two pauses in a row leave HR no time to climb); after: the first such sample
    within 3 (HR climbs again at once).
    """
    t = np.asarray(ts, dtype=np.float64)
    n = t.size
    have_pos = lat is not None and lon is not None and lat.size == n and lon.size == n
    step_m = np.zeros(0)
    if have_pos:
        assert lat is not None and lon is not None
        p1, p2 = np.radians(lat[:-1]), np.radians(lat[1:])
        dlon = np.radians(lon[1:] - lon[:-1])
        a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlon / 2) ** 2
        step_m = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    is_gap = np.zeros(max(n - 1, 0), dtype=bool)
    is_gap[np.asarray(steps, dtype=np.int64) - 1] = True
    calls = []
    previous = 0
    for k in np.asarray(steps, dtype=np.int64):
        before = hr[max(k - 6, previous) : k]
        previous = int(k)
        before = before[before >= hr_valid_min_bpm][-3:]
        after = hr[k : min(k + 3, n)]
        after = after[after >= hr_valid_min_bpm][:1]
        drop = _median(before) - _median(after) if before.size == 3 else float("nan")
        moved = float("nan")
        if have_pos:
            lo, hi = max(k - 11, 0), min(k + 10, n - 1)
            near = step_m[lo:hi][~is_gap[lo:hi]]
            typical = max(_median(near), 1.0) if near.size else 1.0
            moved = float(step_m[k - 1]) / typical
        hr_goes_on = bool(np.isfinite(drop) and drop < pause_hr_drop_bpm)
        stays_put = not np.isfinite(moved) or moved <= jump_max_move_steps
        kind = "clock_jump" if hr_goes_on and stays_put else "pause"
        calls.append(GapCall(int(k), float(t[k] - t[k - 1]), kind, drop, moved))
    return calls
