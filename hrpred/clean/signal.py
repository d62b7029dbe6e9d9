"""Vectorised signal helpers for the detector: expected-HR drive, masks, change points."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from hrpred.clean.numeric import diff
from hrpred.clean.numeric import inv as inv_matrix

# exp() of more than this overflows float64 with margin; longer spans are split.
_MAX_EXP = 600.0
# Samples after a pause's first one in which HR may still move like a new start.
AFTER_PAUSE = 3


def near_resume(resume: np.ndarray) -> np.ndarray:
    """Samples within AFTER_PAUSE samples from a pause's first sample (itself included)."""
    out = resume.copy()
    for k in range(1, AFTER_PAUSE):
        out[k:] |= resume[:-k]
    return out


def exp_smooth(x: np.ndarray, t: np.ndarray, tau: float, y0: float | None = None) -> np.ndarray:
    """First-order low-pass of a piecewise-constant input over irregular times.

    y relaxes toward x[k] during (t[k-1], t[k]] with time constant tau (exact), starting
    at y0 (default x[0]). Written as a weighted cumulative sum, so no per-point loop:
    y_i = e^{-t_i/tau} (e^{t_0/tau} y0 + sum_{k<=i} x_k (e^{t_k/tau} - e^{t_{k-1}/tau})).
    Time is rebased in blocks so the exponentials never overflow.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    if n == 0:
        return x.copy()
    tt = (np.asarray(t, dtype=np.float64) - float(t[0])) / max(tau, 1e-9)
    y = np.empty(n)
    prev = float(x[0] if y0 is None else y0)
    start = 0
    while start < n:
        # Block [start, stop): exponents measured from the sample before the block (the
        # state carried in), kept below _MAX_EXP so they never overflow.
        base = max(start - 1, 0)
        stop = int(np.searchsorted(tt, tt[base] + _MAX_EXP, side="right"))
        stop = max(stop, start + 1)
        e = np.exp(np.minimum(tt[start:stop] - tt[base], 700.0))
        # e_prev starts at e^0 = 1: at sample 0 the term vanishes (y = y0), later blocks
        # relax from the carried state over the first step.
        e_prev = np.concatenate(([1.0], e[:-1]))
        acc = prev + np.cumsum(x[start:stop] * (e - e_prev))
        y[start:stop] = acc / e
        prev = float(y[stop - 1])
        start = stop
    return y


def grade_from_altitude(
    alt: np.ndarray, speed_kmh: np.ndarray, ts: np.ndarray, window_s: float
) -> np.ndarray:
    """Grade (rise/run) over a trailing time window, from altitude and speed-integrated
    distance; 0 where the window covers too little distance (< 20 m) to be meaningful."""
    n = alt.size
    if n < 2:
        return np.zeros(n)
    dt = np.diff(ts.astype(np.float64), prepend=float(ts[0]))
    dist = np.cumsum(speed_kmh / 3.6 * dt)
    j = np.searchsorted(ts, ts - window_s, side="left")
    run = dist - dist[j]
    rise = alt - alt[j]
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(run > 20.0, rise / np.where(run > 20.0, run, 1.0), 0.0)
    return np.clip(g, -0.3, 0.3)


def bin_medians(x: np.ndarray, bins: np.ndarray, n_bins: int, min_count: int = 1) -> np.ndarray:
    """np.median of `x` in each bin 0..n_bins-1 (`bins`: each sample's bin; others are
    ignored) from one sort: NaN for a bin with fewer than `min_count` samples or with a NaN."""
    out = np.full(n_bins, np.nan)
    inside = (bins >= 0) & (bins < n_bins)
    b, v = bins[inside], np.asarray(x, dtype=np.float64)[inside]
    order = np.lexsort((v, b))  # by bin, then value; NaN last within its bin
    v = v[order]
    counts = np.bincount(b, minlength=n_bins)
    first = np.cumsum(counts) - counts
    has = np.flatnonzero(counts >= max(min_count, 1))
    lo = v[first[has] + (counts[has] - 1) // 2]
    hi = v[first[has] + counts[has] // 2]
    med = np.where(counts[has] % 2 == 1, lo, (lo + hi) / 2.0)  # np.median: mean of the middle two
    out[has] = np.where(np.isnan(v[first[has] + counts[has] - 1]), np.nan, med)
    return out


def runs_of(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the True runs of a boolean mask, end exclusive."""
    m = np.concatenate(([False], mask, [False])).astype(np.int8)
    d = diff(m)
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def short_runs(mask: np.ndarray, max_len: int) -> np.ndarray:
    """The part of `mask` made of True runs no longer than max_len."""
    starts, ends = runs_of(mask)
    keep = (ends - starts) <= max_len
    out = np.zeros(mask.size, dtype=bool)
    if keep.any():
        cover = np.zeros(mask.size + 1, dtype=np.int64)
        np.add.at(cover, starts[keep], 1)
        np.add.at(cover, ends[keep], -1)
        out = np.cumsum(cover[:-1]) > 0
    return out


def identical_runs(
    x: np.ndarray,
    min_len: int,
    ignore: np.ndarray | None = None,
    t: np.ndarray | None = None,
    min_s: float = 0.0,
) -> np.ndarray:
    """Mask of runs of at least min_len identical consecutive values (flatlines) that, when
    times `t` are given, also last at least min_s (from their first sample to the next)."""
    n = x.size
    if n == 0:
        return np.zeros(0, dtype=bool)
    starts = np.flatnonzero(np.concatenate(([True], x[1:] != x[:-1])))
    ends = np.append(starts[1:], n)
    keep = (ends - starts) >= min_len
    if t is not None and keep.any():
        last = np.minimum(ends, n - 1)  # the sample after the run (its own last at the end)
        keep &= (t[last] - t[starts]) >= min_s
    if ignore is not None and keep.any():
        keep &= ~ignore[starts]
    out = np.zeros(n, dtype=bool)
    if keep.any():
        cover = np.zeros(n + 1, dtype=np.int64)
        np.add.at(cover, starts[keep], 1)
        np.add.at(cover, ends[keep], -1)
        out = np.cumsum(cover[:-1]) > 0
    return out


Segment = tuple[int, int, float, float]  # (a, b, delta, rss_drop)


def _pairs(ra: np.ndarray, rb: np.ndarray, n: int, min_len: int) -> tuple[np.ndarray, np.ndarray]:
    """All (a, b) from ra x rb leaving at least min_len samples inside and outside."""
    a = np.repeat(ra, rb.size)
    b = np.empty((ra.size, rb.size), dtype=rb.dtype)
    b[:] = rb  # rb once per a: np.tile's result without its overhead
    b = b.ravel()
    ok = ((b - a) >= min_len) & ((n - (b - a)) >= min_len)
    return a[ok], b[ok]


@lru_cache(maxsize=64)
def _grid_pairs(n: int, step: int, min_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate boundaries on the coarse grid and their lengths as float64 (cached: most
    workouts share a length)."""
    grid = np.unique(np.append(np.arange(0, n, step), n))
    a, b = _pairs(grid, grid, n, min_len)
    length = (b - a).astype(np.float64)
    for v in (a, b, length):
        v.flags.writeable = False
    return a, b, length


def best_segments(
    y: np.ndarray, X: np.ndarray, min_len: int, step: int, side: int = 0
) -> list[Segment]:
    """The best segment [a, b) reading LOW and the best reading HIGH, beyond the linear
    model y ~ X (X includes the intercept column): [(a, b, delta, rss_drop), ...] for
    delta < 0 then delta > 0; a side with no candidate is (0, 0, 0.0, 0.0). With `side`
    -1 or +1 only that side is searched (the other is returned as no candidate).

    For every candidate segment the shift is fitted jointly with X (Frisch-Waugh):
    delta = sum_seg(e) / q and the drop in residual sum of squares is sum_seg(e)^2 / q,
    where e is y's residual on X and q = L - c' (X'X)^-1 c with c = sum_seg(X).
    Boundaries are searched on a grid of `step` samples, then refined at full resolution.
    """
    none: Segment = (0, 0, 0.0, 0.0)
    n = y.size
    if n < 2 * min_len + 2:
        return [none, none]
    xtx = X.T @ X
    try:
        inv = inv_matrix(xtx)
    except np.linalg.LinAlgError:
        inv = np.linalg.pinv(xtx)
    beta = inv @ (X.T @ y)
    e = y - X @ beta
    ce = np.concatenate(([0.0], np.cumsum(e)))
    cx = np.empty((n + 1, X.shape[1]))
    cx[0] = 0.0
    np.cumsum(X, axis=0, out=cx[1:])
    one = X.shape[1] == 1
    cx1, inv00 = cx[:, 0].copy(), float(inv[0, 0])

    def score(
        a: np.ndarray, b: np.ndarray, length: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if length is None:
            length = (b - a).astype(np.float64)
        s = ce.take(b) - ce.take(a)  # take: the same as indexing, cheaper on rows
        if one:  # c' inv c of one column: the same single products without matmul/einsum
            c1 = cx1.take(b) - cx1.take(a)
            q = length - (c1 * inv00) * c1
        else:
            c = cx.take(b, axis=0) - cx.take(a, axis=0)
            q = length - np.einsum("ij,ij->i", c @ inv, c)
        q = np.maximum(q, 1e-9)
        return s * s / q, s / q

    def pairs(ra: np.ndarray, rb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _pairs(ra, rb, n, min_len)

    ga, gb, glen = _grid_pairs(n, max(step, 1), min_len)
    if ga.size == 0:
        return [none, none]
    gdrop, gdelta = score(ga, gb, glen)
    out: list[Segment] = []
    for sign in (-1.0, 1.0):
        if side and sign != side:
            out.append(none)
            continue
        # sign * delta > 0 as one comparison (the same for -0.0 and NaN)
        found = np.where((gdelta < 0) if sign < 0 else (gdelta > 0), gdrop, -1.0)
        k = int(np.argmax(found))
        if found[k] <= 0:
            out.append(none)
            continue
        a0, b0 = int(ga[k]), int(gb[k])
        # Refine both boundaries within one grid step (an edge stays an edge).
        ra = np.array([0]) if a0 == 0 else np.arange(max(a0 - step, 0), min(a0 + step, n) + 1)
        rb = np.array([n]) if b0 == n else np.arange(max(b0 - step, 0), min(b0 + step, n) + 1)
        a, b = pairs(ra, rb)
        drop, delta = score(a, b)
        drop = np.where((delta < 0) if sign < 0 else (delta > 0), drop, -1.0)
        j = int(np.argmax(drop))
        out.append((int(a[j]), int(b[j]), float(delta[j]), float(drop[j])))
    return out
