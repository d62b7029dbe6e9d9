"""Detector pieces for the real failure modes of optical and chest HR sensors.

Each function looks at one workout (pass 1, no other workouts needed) and returns where a
fault is, or nothing:
- `low_dropouts`: short runs at implausibly low values (25-60 BPM while running), entered
  and left by a large fall and rise (the contact is lost, the sensor reads noise);
- `run_shape`: whole-run statistics: the HR at the start and its rise over the first minutes
  (the heart warms up, a locked or stuck sensor does not), how well HR follows the speed
  instantly (a cadence lock) versus through the heart's lag, and the HR level. The verdicts
  whole_run_lock and stuck_low are made in `detector.decide` (stuck_low also needs the
  population's or the runner's own HR-vs-speed level);
- `slow_lock`: the first minutes read a flat low value or the cadence, then HR jumps to the
  truth (the sensor finds the pulse late);
- `strap_drying`: the first minutes read a fraction of the truth that rises smoothly to 1
  (a dry chest strap), measured against the expected HR fitted on the rest of the run;
- `noisy_segment`: a long segment much noisier than the rest (lagging, noisy HR);
- `quiet_lock`: a segment much steadier than the rest whose HR reads a line in the speed
  plus white noise: a lock on the cadence at nearly the runner's own HR, which shifts the
  level too little for the change point to see;
- `follows_speed`: whether a locked segment reads the cadence (rises with speed) or a fixed
  value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hrpred.clean.config import DetectorConfig
from hrpred.clean.signal import best_segments, runs_of

# Samples after a pause's first one in which HR may still move like a new start.
AFTER_PAUSE = 3


def _near_resume(resume: np.ndarray) -> np.ndarray:
    """Samples within AFTER_PAUSE samples from a pause's first sample (itself included)."""
    out = resume.copy()
    for k in range(1, AFTER_PAUSE):
        out[k:] |= resume[:-k]
    return out


def low_dropouts(hr: np.ndarray, cfg: DetectorConfig, resume: np.ndarray) -> np.ndarray:
    """Mask of runs at (dropout_max_bpm, low_dropout_max_bpm] no longer than
    low_dropout_max_run samples whose higher neighbour is at least low_dropout_jump_bpm
    above the run's median. A run starting right after a pause (`resume`: first samples
    after pauses) is the HR recovered while standing, no dropout."""
    n = hr.size
    out = np.zeros(n, dtype=bool)
    starts, ends = runs_of((hr > cfg.dropout_max_bpm) & (hr <= cfg.low_dropout_max_bpm))
    fresh = _near_resume(resume)
    for s, e in zip(starts, ends, strict=True):  # few runs, not points
        if e - s > cfg.low_dropout_max_run or fresh[s]:
            continue
        before = hr[s - 1] if s > 0 else -np.inf
        after = hr[e] if e < n else -np.inf
        if max(before, after) - float(np.median(hr[s:e])) >= cfg.low_dropout_jump_bpm:
            out[s:e] = True
    return out


def _r2(X: np.ndarray, y: np.ndarray) -> float:
    """Share of y's variance explained by least squares on X (0 when y is constant)."""
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    var = float(y.var())
    return 1.0 - float((y - X @ coef).var()) / var if var > 0 else 0.0


@dataclass(frozen=True)
class RunShape:
    """Whole-run statistics (NaN when the run is too short to tell)."""

    start_bpm: float  # median HR of the first 3 usable samples
    rise_bpm: float  # median HR over [rise_from_s, rise_to_s) minus start_bpm
    r2_lagged: float  # HR explained by the speed through the heart's lag (drive model)
    r2_instant: float  # HR explained by the speed as it is (what a cadence lock reads)
    p95_bpm: float  # 95th percentile of usable HR

    def whole_lock(self, cfg: DetectorConfig) -> bool:
        """Starts high (no warm-up) and, after the first minutes, follows the speed as it is
        better than through the heart's lag: a cadence lock. (A lock at the start that
        then joins the truth follows the lag later: a slow lock.)"""
        return bool(
            self.start_bpm >= cfg.start_high_bpm
            and self.r2_instant >= max(self.r2_lagged, cfg.whole_min_r2)
        )

    def stuck(self, cfg: DetectorConfig) -> bool:
        """Never warms up and stays low throughout (the level check is the caller's)."""
        return bool(
            abs(self.rise_bpm) <= cfg.whole_max_rise_bpm and self.p95_bpm <= cfg.stuck_max_bpm
        )


def run_shape(
    t: np.ndarray,
    hr: np.ndarray,
    speed: np.ndarray,
    lagged: np.ndarray,
    normal: np.ndarray,
    cfg: DetectorConfig,
) -> RunShape:
    """`RunShape` of one run; `lagged` is the drive design matrix (intercept first), fitted
    like the speed (plus elapsed time) on the usable samples after rise_from_s."""
    nan = float("nan")
    idx = np.flatnonzero(normal)
    if idx.size < 3:
        return RunShape(nan, nan, nan, nan, nan)
    start = float(np.median(hr[idx[:3]]))
    window = normal & (t >= cfg.rise_from_s) & (t < cfg.rise_to_s)
    rise = float(np.median(hr[window])) - start if window.any() else nan
    late = normal & (t >= cfg.rise_from_s)
    r2_lag = r2_inst = nan
    if late.sum() >= 20:
        y = hr[late]
        inst = np.column_stack((np.ones(y.size), speed[late], t[late] / 3600.0))
        r2_lag, r2_inst = _r2(lagged[late], y), _r2(inst, y)
    return RunShape(start, rise, r2_lag, r2_inst, float(np.percentile(hr[idx], 95)))


def slow_lock(
    t: np.ndarray, hr: np.ndarray, normal: np.ndarray, start_bpm: float, cfg: DetectorConfig
) -> tuple[int, str] | None:
    """(end, reason) of a late lock at the start, else None.

    The join is the sample b (slow_lock_min_s <= t[b] <= slow_lock_max_s) where HR departs
    most from a straight line through the samples before it, in units of that line's own
    scatter. A lock reads flat (scatter <= slow_lock_max_noise_bpm) and then jumps: up by
    slow_lock_min_jump_bpm from at most slow_lock_low_max_bpm (read low), or down by
    slow_lock_cadence_jump_bpm from a start at or above start_high_bpm (read the cadence).
    A warming heart rises smoothly, with no jump.
    """
    idx = np.flatnonzero(normal)
    if idx.size < 8:
        return None
    tt, yy = t[idx], hr[idx]
    best: tuple[float, int, float, float, float] | None = None
    for j in range(4, idx.size - 3):  # a few dozen samples at most
        if tt[j] > cfg.slow_lock_max_s:
            break
        if tt[j] < cfg.slow_lock_min_s:
            continue
        A = np.column_stack((np.ones(j), tt[:j]))
        coef, *_ = np.linalg.lstsq(A, yy[:j], rcond=None)
        resid = yy[:j] - A @ coef
        scatter = max(float(np.sqrt((resid**2).sum() / (j - 2))), 0.5)
        jump = float(np.median(yy[j : j + 3])) - float(coef[0] + coef[1] * tt[j])
        z = abs(jump) / scatter
        if best is None or z > best[0]:
            best = (z, j, jump, scatter, float(np.median(yy[:j])))
    if best is None:
        return None
    _, j, jump, scatter, level = best
    if scatter > cfg.slow_lock_max_noise_bpm:
        return None
    end = int(idx[j])
    if jump >= cfg.slow_lock_min_jump_bpm and level <= cfg.slow_lock_low_max_bpm:
        return end, f"slow lock: first {end} samples read {level:.0f} BPM, then +{jump:.0f}"
    if start_bpm >= cfg.start_high_bpm and jump <= -cfg.slow_lock_cadence_jump_bpm:
        return end, f"slow lock: first {end} samples at cadence {level:.0f}, then {jump:.0f}"
    return None


def strap_drying(
    t: np.ndarray,
    hr: np.ndarray,
    expected: np.ndarray,
    noise: float,
    window: np.ndarray,
    cfg: DetectorConfig,
) -> tuple[int, float, str] | None:
    """(end, starting shortfall, reason) of a drying strap at the start, else None.

    `expected` is HR expected from the speed, fitted on the run after drying_fit_from_s;
    `window` the usable samples before drying_max_s. The reading is modelled as expected
    x (1 - a (1 - s(t/T))) with s a half cosine from 0 to 1 over T, plus a warm-up transient
    b exp(-t/tau) (tau in 30, 60, 90 s: the heart's own start, which a drying strap
    outlasts). The best (T, tau) by the drop in squared error over the transient alone;
    a call needs that drop / noise^2 >= drying_min_score, a >= drying_min_shortfall and
    T >= drying_min_s.
    """
    if window.sum() < 10:
        return None
    tw, rw, ew = t[window], (hr - expected)[window], expected[window]
    best = (0.0, 0.0, 0.0)
    for tau in (30.0, 60.0, 90.0):
        e = np.exp(-tw / tau)
        base = rw - e * (e @ rw) / max(float(e @ e), 1e-12)
        rss0 = float(base @ base)
        for T in np.arange(cfg.drying_min_s, cfg.drying_max_s + 1.0, 30.0):
            s = 0.5 * (1.0 - np.cos(np.pi * np.minimum(tw, T) / T))
            A = np.column_stack((e, -ew * (1.0 - s)))
            coef, *_ = np.linalg.lstsq(A, rw, rcond=None)
            r = rw - A @ coef
            drop = (rss0 - float(r @ r)) / noise**2
            if coef[1] > 0 and drop > best[0]:
                best = (drop, float(T), float(coef[1]))
    drop, T, a = best
    if drop < cfg.drying_min_score or a < cfg.drying_min_shortfall:
        return None
    end = int(np.searchsorted(t, T, side="left"))
    return end, a, f"strap drying: reads {1 - a:.2f} x expected at the start, recovers by {T:.0f} s"


def noisy_segment(
    hr: np.ndarray, normal: np.ndarray, cfg: DetectorConfig, resume: np.ndarray
) -> tuple[int, int, float] | None:
    """(start, end, log noise ratio) of the segment whose step-to-step changes are much
    larger than the rest's, else None.

    Change point on log(dHR^2 + 4) between consecutive usable samples, leaving out the
    first steps after a pause (`resume`: HR climbs fast after standing): the segment
    (noisy_min_fraction..noisy_max_fraction of them) with the largest rise; a call needs
    its RSS drop / variance >= noisy_min_score, a mean rise >= noisy_min_log_ratio, and
    steps that undo each other like white noise (lag-1 correlation of the steps at most
    noisy_max_step_corr; the heart's own fast changes, at stops or hills, run on).
    """
    idx = np.flatnonzero(normal & ~_near_resume(resume))
    m = idx.size - 1
    if m < 40:
        return None
    d = np.diff(hr[idx])
    y = np.log(d * d + 4.0)
    var = float(y.var())
    min_len = max(int(cfg.noisy_min_fraction * m), 10)
    if var <= 0 or m < 2 * min_len + 2:
        return None
    _, (a, b, delta, drop) = best_segments(y, np.ones((m, 1)), min_len, 8)
    frac = (b - a) / m
    if drop / var < cfg.noisy_min_score or delta < cfg.noisy_min_log_ratio:
        return None
    if not cfg.noisy_min_fraction <= frac <= cfg.noisy_max_fraction:
        return None
    seg = d[a:b]
    if seg.size < 4 or seg[:-1].std() == 0 or seg[1:].std() == 0:
        return None
    if float(np.corrcoef(seg[:-1], seg[1:])[0, 1]) > cfg.noisy_max_step_corr:
        return None
    start = int(idx[a])
    end = int(idx[b]) if b < idx.size else hr.size
    return start, end, float(delta)


def quiet_lock(
    hr: np.ndarray,
    speed: np.ndarray,
    normal: np.ndarray,
    cfg: DetectorConfig,
    resume: np.ndarray,
) -> tuple[int, int, float] | None:
    """(start, end, score) of a lock that reads nearly the runner's own HR, else None.

    A locked sensor reads the cadence, a line in the speed with no lag, plus white noise
    smaller than a heart's sensor noise; a heart's reading also wanders (HR kinetics, slow
    sensor noise). Change point on log(dHR^2 + 4) between consecutive usable samples (as
    `noisy_segment`, first steps after a pause left out): the segment of at least
    segment_min_len samples with the largest fall; its RSS drop / variance must be at
    least quiet_min_score and it at most lock_weak_max_fraction of the run. Its boundaries
    are loose, so the lock is the run around the segment's middle half that keeps to the
    middle half's line in the speed (within 3 of its step noise / sqrt 2, at least 1 BPM),
    within the segment. A call needs that run's median HR in [lock_min_bpm, lock_max_bpm]
    and its HR white noise around its own line in the speed: residual variance / half the
    step variance at most quiet_max_white (1 for white noise, more for a wandering heart).
    """
    n = hr.size
    idx = np.flatnonzero(normal & ~_near_resume(resume))
    m = idx.size - 1
    if m < 2 * cfg.segment_min_len + 2:
        return None
    d = np.diff(hr[idx])
    y = np.log(d * d + 4.0)
    var = float(y.var())
    if var <= 0:
        return None
    (a, b, _, drop), _ = best_segments(y, np.ones((m, 1)), cfg.segment_min_len, cfg.segment_grid)
    start = int(idx[a])
    end = int(idx[b]) if b < idx.size else n
    score = drop / var
    if score < cfg.quiet_min_score or end - start > cfg.lock_weak_max_fraction * n:
        return None
    quarter = (end - start) // 4
    core = np.zeros(n, dtype=bool)
    core[start + quarter : end - quarter] = True
    core &= normal
    if core.sum() < 5:
        return None
    A = np.column_stack((np.ones(n), speed))
    coef, *_ = np.linalg.lstsq(A[core], hr[core], rcond=None)
    sigma = max(float(np.std(np.diff(hr[core]))) / np.sqrt(2.0), 1.0)
    keeps = (np.abs(hr - A @ coef) <= 3.0 * sigma) | ~normal
    lo, hi = start + quarter, end - quarter
    while lo > start and keeps[lo - 1]:
        lo -= 1
    while hi < end and keeps[hi]:
        hi += 1
    inside = np.zeros(n, dtype=bool)
    inside[lo:hi] = True
    inside &= normal
    x = hr[inside]
    if x.size < cfg.segment_min_len:
        return None
    if not cfg.lock_min_bpm <= float(np.median(x)) <= cfg.lock_max_bpm:
        return None
    coef, *_ = np.linalg.lstsq(A[inside], x, rcond=None)
    steps = float(np.diff(x).var()) / 2.0
    if steps <= 0 or float((x - A[inside] @ coef).var()) / steps > cfg.quiet_max_white:
        return None
    return lo, hi, float(score)


def grow_lock(
    hr: np.ndarray, speed: np.ndarray, normal: np.ndarray, start: int, end: int
) -> tuple[int, int]:
    """[start, end) of a lock grown sample by sample, on each side, while HR keeps reading
    the lock's own line in speed (HR ~ a + b speed fitted on the segment) within 3 of its
    scatter (at least 1.5 BPM): a lock that reads the cadence crosses the true HR, so the
    change point may catch only its clearer part. Grows by at most the segment's length."""
    n = hr.size
    inside = np.zeros(n, dtype=bool)
    inside[start:end] = True
    inside &= normal
    if inside.sum() < 5:
        return start, end
    A = np.column_stack((np.ones(int(inside.sum())), speed[inside]))
    coef, *_ = np.linalg.lstsq(A, hr[inside], rcond=None)
    tol = 3.0 * max(float(np.std(hr[inside] - A @ coef)), 1.5)
    reads = np.abs(hr - coef[0] - coef[1] * speed) <= tol
    limit = end - start
    a = start
    while a > 0 and start - a < limit and reads[a - 1]:
        a -= 1
    b = end
    while b < n and b - end < limit and reads[b]:
        b += 1
    return a, b


def follows_speed(
    hr: np.ndarray, speed: np.ndarray, mask: np.ndarray, cfg: DetectorConfig
) -> tuple[bool, float]:
    """(reads the cadence, slope t-statistic): a locked segment's HR against its speed.

    The cadence rises with pace; a fixed lock does not. Reads the cadence when the slope's
    t-statistic is at least follow_min_t, or the level is below lock_fixed_min_bpm (fixed
    locks read high), or, at a level below follow_slope_max_bpm (where a cadence is as
    likely as a fixed lock), the slope itself is at least follow_min_slope (BPM per km/h:
    nearer the cadence's rise than flat, when the pace varies too little for the
    t-statistic to tell)."""
    y, x = hr[mask], speed[mask]
    if y.size < 5:
        return False, float("nan")
    xc = x - x.mean()
    sxx = float(xc @ xc)
    slope = tstat = 0.0
    if sxx > 1e-9:
        slope = float(xc @ (y - y.mean())) / sxx
        resid = y - y.mean() - slope * xc
        se = np.sqrt(max(float(resid @ resid) / max(y.size - 2, 1), 1e-12) / sxx)
        tstat = slope / se
    low = float(np.median(y)) < cfg.lock_fixed_min_bpm
    near = slope >= cfg.follow_min_slope and float(np.median(y)) < cfg.follow_slope_max_bpm
    follow = tstat >= cfg.follow_min_t or near or low
    return bool(follow), float(tstat)
