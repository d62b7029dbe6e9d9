"""Pass 1 of the detector on one workout (`analyse` -> `Analysis`): sample faults (dropouts,
spikes, flatlines, out-of-range samples), the whole-run shape, a slow lock or a drying strap at
the start, the change-point search for the segment whose HR shift best explains HR beyond the
expected model (`hrpred.clean.signal.best_segments`, candidates passing the thresholds), a
lagging noisy segment, a quiet lock, and the workout's level statistics
(`hrpred.clean.level`). What each finding is, once the user's level is known, is pass 2
(`hrpred.clean.classify`); the overview is `hrpred.clean.detector`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hrpred.clean.config import DetectorConfig
from hrpred.clean.level import equivalent_speed, level_stats, robust_noise
from hrpred.clean.locks import quiet_lock
from hrpred.clean.numeric import lstsq
from hrpred.clean.pauses import since_pause_s
from hrpred.clean.sensor import (
    RunShape,
    StartFit,
    low_dropouts,
    noisy_segment,
    run_shape,
    slow_lock,
    strap_drying,
    warmup_profile,
)
from hrpred.clean.signal import (
    best_segments,
    exp_smooth,
    identical_runs,
    runs_of,
    short_runs,
)
from hrpred.timeseries import interpolate_gaps, rolling_median

HELD_MIN = 3  # a value repeated this often right after a pause was held by the watch


@dataclass
class Analysis:
    """Pass-1 findings on one workout (arrays have the workout's length)."""

    dropout: np.ndarray  # bool: abrupt falls to ~0
    low: np.ndarray  # bool: other samples below the valid range (may be an offset)
    spike: np.ndarray  # bool
    flat: np.ndarray  # bool
    low_dropout: np.ndarray  # bool: abrupt falls to implausibly low values (not 0)
    normal: np.ndarray  # bool: none of the above, and outside a start fault
    speed: np.ndarray  # km/h (for telling a cadence lock that follows the pace)
    shape: RunShape  # whole-run statistics (warm-up, lag, level)
    start: tuple[str, int, str] | None  # (slow_lock | strap_drying, end, reason); a strap
    # drying is a candidate until pass 2 has held it against the runner's usual warm-up
    start_fit: StartFit | None  # the first minutes against expected HR (with a drying call)
    warmup: np.ndarray  # the run's warm-up shortfall per warmup_bins_s bin (NaN: unknown)
    noisy: tuple[int, int, float] | None  # lagging, noisy segment: (start, end, log ratio)
    quiet: tuple[int, int, float] | None  # lock at nearly the runner's HR: (start, end, score)
    level_drive: np.ndarray  # expected-HR drive of the level model (km/h)
    hours: np.ndarray  # elapsed time (h)
    since_s: np.ndarray  # seconds since the start or the last pause
    resume: np.ndarray  # bool: first samples after pauses
    level_mask: np.ndarray  # bool: samples used for the workout's level
    segments: list[tuple[int, int, float, float]]  # change-point candidates passing the
    # thresholds, best first: (start, end exclusive, HR shift vs the rest in BPM, score)
    score: float  # best candidate's RSS drop / noise variance (0 when none)
    stats: np.ndarray  # level sufficient statistics (N_LEVEL_STATS)
    eligible: bool  # may serve as a baseline for the user's other workouts


def sample_faults(
    hr: np.ndarray,
    hr_low: float,
    hr_high: float,
    cfg: DetectorConfig,
    pause_step: np.ndarray | None = None,
    t: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(dropout, low, spike, flat) masks.

    A dropout is a run at or below dropout_max_bpm that falls from at least
    dropout_jump_bpm (its neighbours); low samples that do not fall abruptly are only
    'low' (a large offset can push a slow start below the valid range). Spikes are
    measured against a rolling median within each stretch between pauses (`pause_step`:
    first samples after them), so the HR recovered during a pause is no spike. A flatline is
    a run of flatline_run identical values lasting flatline_min_s (with times `t`: a watch
    that records HR only when it changes holds a steady heart's value for a minute), or the
    value before a pause repeated right after it at least HELD_MIN times (watches hold the
    last HR across a pause while the heart relaxes; up to flatline_run samples).
    """
    n = hr.size
    zero = hr <= cfg.dropout_max_bpm
    out_low = hr < hr_low
    dropout = np.zeros(n, dtype=bool)
    starts, ends = runs_of(zero)
    if starts.size:
        # The raw neighbours: a strap dropout falls from a real reading straight to ~0.
        before = np.where(starts > 0, hr[np.maximum(starts - 1, 0)], 0.0)
        after = np.where(ends < n, hr[np.minimum(ends, n - 1)], 0.0)
        abrupt = np.maximum(before, after) - cfg.dropout_max_bpm >= cfg.dropout_jump_bpm
        for s, e in zip(starts[abrupt], ends[abrupt], strict=True):  # few runs, not points
            dropout[s:e] = True
    low = out_low & ~dropout
    bad = out_low | (hr > hr_high)
    base = interpolate_gaps(hr, bad, np.arange(n, dtype=np.float64)) if (~bad).any() else hr
    cuts = [0, *(int(k) for k in (pause_step if pause_step is not None else ())), n]
    med = np.concatenate(
        [
            rolling_median(base[a:b], cfg.spike_window)
            for a, b in zip(cuts[:-1], cuts[1:], strict=True)
        ]
    )
    spike = short_runs(np.abs(hr - med) > cfg.spike_bpm, cfg.spike_max_run) & ~out_low
    spike |= hr > hr_high
    flat = identical_runs(hr, cfg.flatline_run, out_low, t, cfg.flatline_min_s)
    for k in cuts[1:-1]:  # the last value held across a pause: the heart relaxed meanwhile
        held = k
        while held < n and hr[held] == hr[k - 1] and held - k < cfg.flatline_run:
            held += 1
        if held - k >= HELD_MIN:  # fewer: chance repeats of a noisy reading
            flat[k:held] = True
    return dropout, low, spike, flat


def is_weak_lock(
    start: int, end: int, shift: float, score: float, n: int, cfg: DetectorConfig
) -> bool:
    """A high segment below the change-point thresholds that may still be a cadence lock
    at nearly the runner's own HR: only a lock call can come of it (stricter noise test),
    and it is short enough not to be the workout's own level."""
    return (score < cfg.segment_min_score or abs(shift) < cfg.segment_min_shift_bpm) and (
        shift >= cfg.lock_weak_min_shift_bpm
        and score >= cfg.lock_weak_min_score
        and end - start <= cfg.lock_weak_max_fraction * n
    )


def _start_fit(
    t: np.ndarray,
    hr: np.ndarray,
    normal: np.ndarray,
    level_drive: np.ndarray,
    hours: np.ndarray,
    before_pause: np.ndarray,
    cfg: DetectorConfig,
) -> StartFit | None:
    """The run's first minutes (usable samples before drying_fit_from_s and any pause)
    against HR expected from the level drive, fitted on the usable run after
    drying_fit_from_s; None when that part is too short to fit."""
    late = normal & (t >= cfg.drying_fit_from_s)
    if late.sum() < cfg.level_min_points:
        return None
    X = np.column_stack((np.ones(t.size), level_drive, hours))
    coef = lstsq(X[late], hr[late])
    expected = X @ coef
    noise = robust_noise(hr[late] - expected[late])
    window = normal & before_pause & (t < cfg.drying_fit_from_s)
    first = int(np.searchsorted(t, cfg.drying_fit_from_s, side="right")) + 1
    return StartFit(
        t=t[window], t_run=t[:first], resid=(hr - expected)[window],
        expected=expected[window], noise=noise,
    )  # fmt: skip


def _segments(
    ts: np.ndarray, hr: np.ndarray, drives: np.ndarray, normal: np.ndarray, cfg: DetectorConfig
) -> tuple[list[tuple[int, int, float, float]], float]:
    """Change-point candidates passing the thresholds (best first) and the best score."""
    n = hr.size
    idx = np.flatnonzero(normal)
    segments: list[tuple[int, int, float, float]] = []
    best = 0.0
    if idx.size < 2 * cfg.segment_min_len + 2:
        return segments, best
    X = drives[idx]
    y = hr[idx]
    coef = lstsq(X, y)
    noise = robust_noise(y - X @ coef)
    for a, b, shift, drop in best_segments(y, X, cfg.segment_min_len, cfg.segment_grid):
        score = drop / noise**2
        best = max(best, score)
        if b <= a:
            continue
        first = 0 if a == 0 else int(idx[a])
        last = n if b >= idx.size else int(idx[b])
        if score >= cfg.segment_min_score and abs(shift) >= cfg.segment_min_shift_bpm:
            segments.append((first, last, float(shift), float(score)))
        elif is_weak_lock(first, last, shift, score, n, cfg):
            segments.append((first, last, float(shift), float(score)))
    segments.sort(key=lambda c: -c[3])
    return segments, best


def analyse(
    ts: np.ndarray,
    hr: np.ndarray,
    speed: np.ndarray,
    alt: np.ndarray,
    hr_low: float,
    hr_high: float,
    cfg: DetectorConfig,
    pause_step: np.ndarray | None = None,
) -> Analysis:
    """Pass 1 on one workout: sample faults, whole-run shape, a slow lock at the start,
    change-point segments, a drying strap at the start (against the rest of the run, its
    segments left out), a noisy segment, level statistics.

    `pause_step` (first samples after pauses): no drive over a pause (the runner stood), and
    the warm-up transient restarts after it."""
    n = hr.size
    steps = np.zeros(0, dtype=np.int64) if pause_step is None else np.asarray(pause_step)
    t = (ts - ts[0]).astype(np.float64)
    resume = np.zeros(n, dtype=bool)
    resume[steps] = True
    since = since_pause_s(ts, resume)
    before_pause = np.arange(n) < (int(steps.min()) if steps.size else n)
    dropout, low, spike, flat = sample_faults(hr, hr_low, hr_high, cfg, steps, t)
    low_drop = low_dropouts(hr, cfg, resume) & ~dropout
    low &= ~low_drop
    usable = ~(dropout | low | spike | flat | low_drop)
    eq = equivalent_speed(speed, alt, ts, cfg)
    eq[resume] = 0.0
    hours = t / 3600.0
    drives = np.column_stack(
        (
            np.ones(n),
            exp_smooth(eq, ts, cfg.tau_fast_s, y0=0.0),
            exp_smooth(eq, ts, cfg.tau_slow_s, y0=0.0),
            hours,
            np.exp(-since / cfg.tau_start_s),
        )
    )
    level_drive = exp_smooth(eq, ts, cfg.level_tau_s, y0=0.0)
    shape = run_shape(t, hr, speed, drives[:, :4], usable, cfg)
    whole = shape.whole_lock(cfg) or shape.stuck(cfg)
    normal = usable.copy()
    start: tuple[str, int, str] | None = None
    if not shape.whole_lock(cfg):
        lock = slow_lock(t, hr, usable & before_pause, shape.start_bpm, cfg)
        if lock is not None:
            start = ("slow_lock", lock[0], lock[1])
            normal[: lock[0]] = False
    segments, best = _segments(ts, hr, drives, normal, cfg)
    strong = [c for c in segments if not is_weak_lock(*c, n, cfg)]
    start_fit = None
    warmup = np.full(len(cfg.warmup_bins_s) - 1, np.nan)
    if start is None and not whole:
        rest = normal.copy()  # the segments but those that may be the drying itself:
        for first, last, shift, _ in strong:  # a low start, or a high rest after it
            early = t[min(last, n - 1)] <= cfg.drying_fit_from_s and t[first] < cfg.drying_min_s
            high_rest = last == n and t[first] <= cfg.drying_fit_from_s
            if not ((shift < 0 and early) or (shift > 0 and high_rest)):
                rest[first:last] = False
        start_fit = _start_fit(t, hr, rest, level_drive, hours, before_pause, cfg)
        if start_fit is not None:
            warmup = warmup_profile(start_fit, cfg.warmup_bins_s)
            dry = strap_drying(start_fit, None, cfg)  # a candidate: any runner's warm-up
            start = None if dry is None else ("strap_drying", dry[0], dry[2])
        if start is None:
            start_fit = None  # pass 2 needs it only to judge a drying call
        else:  # the segments again, without the drying
            normal[: start[1]] = False
            segments, best = _segments(ts, hr, drives, normal, cfg)
            strong = [c for c in segments if not is_weak_lock(*c, n, cfg)]
    noisy = noisy_segment(hr, usable, cfg, resume)
    quiet = None if whole or noisy is not None else quiet_lock(hr, speed, normal, cfg, resume)
    level_mask = normal & (since >= cfg.level_warmup_s)
    for first, last, _, _ in strong:
        level_mask[first:last] = False
    if noisy is not None:
        level_mask[noisy[0] : noisy[1]] = False
    stats = level_stats(level_drive[level_mask], hours[level_mask], hr[level_mask])
    eligible = (
        not strong
        and (start is None or start[0] == "strap_drying")  # its span is out of the level
        and noisy is None
        and not whole
        and int(level_mask.sum()) >= cfg.level_min_points
    )
    return Analysis(
        dropout=dropout,
        low=low,
        spike=spike,
        flat=flat,
        low_dropout=low_drop,
        normal=normal,
        speed=speed,
        shape=shape,
        start=start,
        start_fit=start_fit,
        warmup=warmup,
        noisy=noisy,
        quiet=quiet,
        level_drive=level_drive,
        hours=hours,
        since_s=since,
        resume=resume,
        level_mask=level_mask,
        segments=segments,
        score=float(best),
        stats=stats,
        eligible=eligible,
    )
