"""What a cadence lock looks like, as against a heart at a steady tempo.

An optical sensor that locks onto the arm swing reads the step cadence: it switches onto it
and off it within a sample or two (whatever the pace does), and while locked it reads a line
in the speed plus white noise, with none of the heart's own dynamics (the lag after a change
of pace, the slow wander). A runner's real HR at a steady tempo can sit just as high and be
just as quiet, but it is entered and left with the pace and it wanders. So a lock needs the
sensor's signature (`lock_signature`): switching edges (`switching_edges`, also the test of
a partial offset's edges) or a white reading about a line in the speed (`white_ratio`).

Also here: `quiet_lock` (a lock at nearly the runner's own HR, found by its steadiness),
`grow_lock` (a lock's full extent) and `follows_speed` (a lock on the cadence or on a fixed
value).
"""

from __future__ import annotations

import numpy as np

from hrpred.clean.config import DetectorConfig
from hrpred.clean.numeric import diff, lstsq, median, std, var
from hrpred.clean.signal import best_segments, near_resume

WHITE = "white about the speed"  # how `lock_signature` names a white reading


def white_ratio(hr: np.ndarray, speed: np.ndarray, mask: np.ndarray) -> float:
    """Residual variance of HR about its least-squares line in the speed over `mask`, over
    half the variance of its sample-to-sample steps: about 1 for a line plus white noise (a
    sensor reading the cadence), much more for a heart that wanders (inf when too short)."""
    y, x = hr[mask], speed[mask]
    if y.size < 10:
        return float("inf")
    A = np.column_stack((np.ones(y.size), x))
    coef = lstsq(A, y)
    steps = var(diff(y)) / 2.0
    if steps <= 0:
        return float("inf")
    return var(y - A @ coef) / steps


def _level(x: np.ndarray, a: int, b: int) -> float:
    """Median of the finite values of x[a:b] (NaN when none)."""
    v = x[max(a, 0) : max(b, 0)]
    v = v[np.isfinite(v)]
    return median(v) if v.size else float("nan")


def switching_edges(
    resid: np.ndarray,
    speed: np.ndarray,
    since_s: np.ndarray,
    part: tuple[int, int],
    sign: float,
    size: float,
    cfg: DetectorConfig,
) -> tuple[bool, str]:
    """(whether HR switches into and out of `part` like a sensor, why not).

    `resid` is HR minus HR expected from the speed (fitted outside the part; NaN where HR is
    not usable). At every interior edge of part [a, b), in the direction `sign` (+1: the part
    reads higher than its neighbours), the residual changes by at least edge_fraction of
    `size` (and edge_min_bpm) within edge_steps samples, and its level (median of edge_window samples each
    side) by as much; the speed's level changes by at most edge_max_dspeed_kmh and stays at
    edge_min_kmh or more (not a stop); the edge comes at least edge_min_s after the start or
    a pause (`since_s`). A heart changes that fast only with the pace, at a stop or warming
    up, and a noisy reading's steps do not move its level. False without an interior edge.
    """
    n = resid.size
    a, b = part
    edges = [(e, s) for e, s in ((a, sign), (b, -sign)) if 0 < e < n]
    if not edges:
        return False, "no edge inside the run"
    need = max(cfg.edge_fraction * size, cfg.edge_min_bpm)
    k, w = cfg.edge_steps, cfg.edge_window
    for e, s in edges:
        if since_s[min(e, n - 1)] < cfg.edge_min_s:
            return False, f"edge at {e} in a warm-up"
        near = s * (_level(resid, e, e + k) - _level(resid, e - k, e))
        far = s * (_level(resid, e + k, e + k + w) - _level(resid, e - k - w, e - k))
        if not (near >= need and near >= cfg.edge_sharpness * far):
            return False, f"edge at {e} glides ({near:.0f} of {far:.0f} BPM)"
        v0, v1 = median(speed[max(e - w, 0) : e]), median(speed[e : e + w])
        if abs(v1 - v0) > cfg.edge_max_dspeed_kmh or min(v0, v1) < cfg.edge_min_kmh:
            return False, f"edge at {e} comes with the pace ({v0:.1f} -> {v1:.1f} km/h)"
    return True, ""


def lock_signature(
    hr: np.ndarray,
    resid: np.ndarray,
    speed: np.ndarray,
    since_s: np.ndarray,
    part: tuple[int, int],
    size: float,
    cfg: DetectorConfig,
) -> tuple[bool, str]:
    """(whether the high part [a, b) reads like a locked sensor, how): white about a line in
    the speed (`white_ratio` at most lock_max_white), or switching edges (`resid`: HR minus
    HR expected from the speed, NaN where HR is not usable)."""
    a, b = part
    mask = np.zeros(hr.size, dtype=bool)
    mask[a:b] = True
    mask &= np.isfinite(resid)
    white = white_ratio(hr, speed, mask)
    if white <= cfg.lock_max_white:
        return True, f"{WHITE} x{white:.1f}"
    edges, why = switching_edges(resid, speed, since_s, part, 1.0, size, cfg)
    if edges:
        return True, "switching edges"
    return False, f"a heart: wanders x{white:.0f}, {why}"


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
    step variance at most quiet_max_white (1 for white noise, more for a wandering heart);
    a less steady segment (score from quiet_weak_min_score) needs a reading nearer pure white
    noise (at most quiet_weak_max_white).
    """
    n = hr.size
    idx = np.flatnonzero(normal & ~near_resume(resume))
    m = idx.size - 1
    if m < 2 * cfg.segment_min_len + 2:
        return None
    d = diff(hr[idx])
    y = np.log(d * d + 4.0)
    y_var = var(y)
    if y_var <= 0:
        return None
    (a, b, _, drop), _ = best_segments(
        y, np.ones((m, 1)), cfg.segment_min_len, cfg.segment_grid, side=-1
    )
    start = int(idx[a])
    end = int(idx[b]) if b < idx.size else n
    score = drop / y_var
    if score < min(cfg.quiet_min_score, cfg.quiet_weak_min_score):
        return None
    if end - start > cfg.lock_weak_max_fraction * n:
        return None
    quarter = (end - start) // 4
    core = np.zeros(n, dtype=bool)
    core[start + quarter : end - quarter] = True
    core &= normal
    if core.sum() < 5:
        return None
    A = np.column_stack((np.ones(n), speed))
    coef = lstsq(A[core], hr[core])
    sigma = max(std(diff(hr[core])) / np.sqrt(2.0), 1.0)
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
    if not cfg.lock_min_bpm <= median(x) <= cfg.lock_max_bpm:
        return None
    coef = lstsq(A[inside], x)
    steps = var(diff(x)) / 2.0
    white = cfg.quiet_max_white if score >= cfg.quiet_min_score else cfg.quiet_weak_max_white
    if steps <= 0 or var(x - A[inside] @ coef) / steps > white:
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
    coef = lstsq(A, hr[inside])
    tol = 3.0 * max(std(hr[inside] - A @ coef), 1.5)
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
    low = median(y) < cfg.lock_fixed_min_bpm
    near = slope >= cfg.follow_min_slope and median(y) < cfg.follow_slope_max_bpm
    follow = tstat >= cfg.follow_min_t or near or low
    return bool(follow), float(tstat)
