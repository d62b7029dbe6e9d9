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
- `noisy_segment`: a long segment much noisier than the rest (lagging, noisy HR).
Locks on the cadence (their signature, a quiet lock, a lock's extent and kind) are
`hrpred.clean.locks`'.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hrpred.clean.config import DetectorConfig
from hrpred.clean.numeric import diff, lstsq, median, median3, percentile, std, var
from hrpred.clean.signal import best_segments, bin_medians, near_resume, runs_of


def low_dropouts(hr: np.ndarray, cfg: DetectorConfig, resume: np.ndarray) -> np.ndarray:
    """Mask of runs at (dropout_max_bpm, low_dropout_max_bpm] no longer than
    low_dropout_max_run samples whose higher neighbour is at least low_dropout_jump_bpm
    above the run's median. A run starting right after a pause (`resume`: first samples
    after pauses) is the HR recovered while standing, no dropout."""
    n = hr.size
    out = np.zeros(n, dtype=bool)
    starts, ends = runs_of((hr > cfg.dropout_max_bpm) & (hr <= cfg.low_dropout_max_bpm))
    fresh = near_resume(resume)
    for s, e in zip(starts, ends, strict=True):  # few runs, not points
        if e - s > cfg.low_dropout_max_run or fresh[s]:
            continue
        before = hr[s - 1] if s > 0 else -np.inf
        after = hr[e] if e < n else -np.inf
        if max(before, after) - median(hr[s:e]) >= cfg.low_dropout_jump_bpm:
            out[s:e] = True
    return out


def _r2(X: np.ndarray, y: np.ndarray) -> float:
    """Share of y's variance explained by least squares on X (0 when y is constant)."""
    coef = lstsq(X, y)
    v = var(y)
    return 1.0 - var(y - X @ coef) / v if v > 0 else 0.0


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
    start = median(hr[idx[:3]])
    window = normal & (t >= cfg.rise_from_s) & (t < cfg.rise_to_s)
    rise = median(hr[window]) - start if window.any() else nan
    late = normal & (t >= cfg.rise_from_s)
    r2_lag = r2_inst = nan
    if late.sum() >= 20:
        y = hr[late]
        inst = np.column_stack((np.ones(y.size), speed[late], t[late] / 3600.0))
        r2_lag, r2_inst = _r2(lagged[late], y), _r2(inst, y)
    return RunShape(start, rise, r2_lag, r2_inst, percentile(hr[idx], 95.0))


def slow_lock(
    t: np.ndarray, hr: np.ndarray, normal: np.ndarray, start_bpm: float, cfg: DetectorConfig
) -> tuple[int, str] | None:
    """(end, reason) of a late lock at the start, else None.

    The join is the sample b (slow_lock_min_s <= t[b] <= slow_lock_max_s) where HR departs
    most from a straight line through the samples before it, in units of that line's own
    scatter. A lock reads flat (scatter <= slow_lock_max_noise_bpm) and then jumps: up by
    slow_lock_min_jump_bpm from at most slow_lock_low_max_bpm (read low), or down by
    slow_lock_cadence_jump_bpm from a start at or above start_high_bpm (read the cadence).
    A warming heart rises smoothly, with no jump. Every candidate join at once, from
    cumulative sums (the least-squares line through the first j samples).
    """
    idx = np.flatnonzero(normal)
    if idx.size < 8:
        return None
    tt, yy = t[idx], hr[idx]
    j = np.arange(4, idx.size - 3)
    j = j[(tt[j] >= cfg.slow_lock_min_s) & (tt[j] <= cfg.slow_lock_max_s)]
    if j.size == 0:
        return None
    # Sums over the first j samples (time rebased for conditioning).
    t0 = tt - tt[0]
    c = [np.concatenate(([0.0], np.cumsum(v))) for v in (t0, t0 * t0, yy, t0 * yy, yy * yy)]
    st, stt, sy, sty, syy = (v[j] for v in c)
    m = j.astype(np.float64)
    det = np.maximum(m * stt - st * st, 1e-12)
    b1 = (m * sty - st * sy) / det
    b0 = (sy - b1 * st) / m
    rss = np.maximum(syy - b0 * sy - b1 * sty, 0.0)
    scatter = np.maximum(np.sqrt(rss / (m - 2.0)), 0.5)
    nxt = median3(yy[j], yy[j + 1], yy[j + 2])
    jump_all = nxt - (b0 + b1 * t0[j])
    k = int(np.argmax(np.abs(jump_all) / scatter))
    jj, jump = int(j[k]), float(jump_all[k])
    if scatter[k] > cfg.slow_lock_max_noise_bpm:
        return None
    level = median(yy[:jj])
    end = int(idx[jj])
    if jump >= cfg.slow_lock_min_jump_bpm and level <= cfg.slow_lock_low_max_bpm:
        return end, f"slow lock: first {end} samples read {level:.0f} BPM, then +{jump:.0f}"
    if start_bpm >= cfg.start_high_bpm and jump <= -cfg.slow_lock_cadence_jump_bpm:
        return end, f"slow lock: first {end} samples at cadence {level:.0f}, then {jump:.0f}"
    return None


@dataclass(frozen=True)
class StartFit:
    """The start of a run against HR expected from the speed (fitted on the run after
    drying_fit_from_s), over the usable samples before drying_max_s and any pause: what pass
    2 needs to judge a drying strap against the runner's own warm-ups."""

    t: np.ndarray  # s since the start
    t_run: np.ndarray  # s since the start of every sample of the run's first minutes
    resid: np.ndarray  # HR minus expected (BPM)
    expected: np.ndarray  # expected HR (BPM)
    noise: float  # white-noise SD of the residual after drying_fit_from_s (BPM)


def warmup_profile(fit: StartFit, edges_s: tuple[float, ...]) -> np.ndarray:
    """The run's warm-up shortfall: median of -resid / expected in each bin of
    [edges_s[i], edges_s[i + 1]) s (NaN for a bin with fewer than 2 samples)."""
    bins = np.searchsorted(np.asarray(edges_s), fit.t, side="right") - 1
    short = -fit.resid / np.maximum(fit.expected, 1.0)
    return bin_medians(short, bins, len(edges_s) - 1, min_count=2)


def template_curve(t: np.ndarray, template: np.ndarray, edges_s: tuple[float, ...]) -> np.ndarray:
    """A warm-up template (shortfall per bin, `warmup_profile`'s bins; NaN = 0) as a curve
    over times t: linear between bin middles, flat before the first, 0 from the last edge."""
    e = np.asarray(edges_s, dtype=np.float64)
    mid = 0.5 * (e[:-1] + e[1:])
    y = np.nan_to_num(np.maximum(template, 0.0))
    return np.interp(t, np.append(mid, e[-1]), np.append(y, 0.0))


def strap_drying(
    fit: StartFit, template: np.ndarray | None, cfg: DetectorConfig
) -> tuple[int, float, str] | None:
    """(end sample, starting shortfall, reason) of a drying strap at the start, else None.

    The reading is modelled as expected x (1 - w(t) - a (1 - s(t/T))): w the runner's usual
    warm-up shortfall (`template`: shortfall per warmup_bins_s bin, from their other runs;
    None: none), s a half cosine from 0 to 1 over T (a shortfall that holds, then recovers),
    plus the heart's own start b exp(-t/tau) (tau in drying_start_tau_s: a drying strap
    outlasts it). The best (T, tau) by the drop in squared error over the start alone; a call
    needs that drop / noise^2 >= drying_min_score, a >= drying_min_shortfall and
    T >= drying_min_s: a start lower and slower than the heart's and than the runner's own
    usual warm-up. Every T at once (2x2 normal equations).
    """
    if fit.t.size < 10:
        return None
    tw, ew = fit.t, fit.expected
    rw = fit.resid
    if template is not None:
        rw = rw + ew * template_curve(tw, template, cfg.warmup_bins_s)
    Ts = np.arange(cfg.drying_min_s, cfg.drying_max_s + 1.0, 30.0)
    s = 0.5 * (1.0 - np.cos(np.pi * np.minimum(tw[None, :], Ts[:, None]) / Ts[:, None]))
    u = -ew[None, :] * (1.0 - s)  # [nT, n]
    uu, ur = (u * u).sum(axis=1), u @ rw
    rr = float(rw @ rw)
    best = (0.0, 0.0, 0.0)  # (drop in squared error / noise^2, T, a)
    for tau in cfg.drying_start_tau_s:
        e = np.exp(-tw / tau)
        ee, er, eu = float(e @ e), float(e @ rw), u @ e
        rss0 = rr - er * er / max(ee, 1e-12)  # the heart's own start alone
        det = np.maximum(ee * uu - eu * eu, 1e-12)
        c0 = (uu * er - eu * ur) / det
        c1 = (ee * ur - eu * er) / det
        drop = np.where(c1 > 0, (rss0 - (rr - c0 * er - c1 * ur)) / fit.noise**2, -np.inf)
        k = int(np.argmax(drop))
        if drop[k] > best[0]:
            best = (float(drop[k]), float(Ts[k]), float(c1[k]))
    drop, T, a = best
    if drop < cfg.drying_min_score or a < cfg.drying_min_shortfall:
        return None
    end = int(np.searchsorted(fit.t_run, T, side="left"))
    usual = "" if template is None else " beyond the runner's usual warm-up"
    why = f"strap drying: reads {1 - a:.2f} x expected at the start{usual}, recovers by {T:.0f} s"
    return end, a, why


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
    idx = np.flatnonzero(normal & ~near_resume(resume))
    m = idx.size - 1
    if m < 40:
        return None
    d = diff(hr[idx])
    y = np.log(d * d + 4.0)
    y_var = var(y)
    min_len = max(int(cfg.noisy_min_fraction * m), 10)
    if y_var <= 0 or m < 2 * min_len + 2:
        return None
    _, (a, b, delta, drop) = best_segments(y, np.ones((m, 1)), min_len, 8, side=1)
    frac = (b - a) / m
    if drop / y_var < cfg.noisy_min_score or delta < cfg.noisy_min_log_ratio:
        return None
    if not cfg.noisy_min_fraction <= frac <= cfg.noisy_max_fraction:
        return None
    seg = d[a:b]
    if seg.size < 4 or std(seg[:-1]) == 0 or std(seg[1:]) == 0:
        return None
    if float(np.corrcoef(seg[:-1], seg[1:])[0, 1]) > cfg.noisy_max_step_corr:
        return None
    start = int(idx[a])
    end = int(idx[b]) if b < idx.size else hr.size
    return start, end, float(delta)
