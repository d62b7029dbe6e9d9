"""Deterministic anomaly detector (replaces the reference's LLM triage).

Physiology gives every step an expected HR: HR follows a first-order response to the
grade-adjusted speed ("drive"), plus a slow drift and a warm-up transient. On one workout:
- sample faults: dropouts (HR falls to ~0), spikes (short excursions from the rolling
  median), flatlines (a stuck value), out-of-range samples;
- segment faults: the single segment whose HR shift best explains HR beyond the expected
  model (change point on the HR-minus-expected residual, fitted jointly with the model).
  A segment reading low is a partial offset, one reading high, steadier than the rest and in
  the cadence band a cadence lock: fixed (cadence_lock) or rising with the pace
  (cadence_follow);
- real sensor failure modes (hrpred/clean/sensor.py): low dropouts (25-60 BPM), a slow
  lock or a drying strap over the first minutes, a long lagging and noisy segment, a lock
  at nearly the runner's own HR (much steadier than the rest and white about a line in the
  speed; called when the change point finds no segment fault), and the whole-run shape (no
  warm-up, HR following the speed without the heart's lag);
- whole-run faults need a level: full offsets (HR too low, tracking the speed) and stuck
  low readings (too low, flat, never warming up) are judged against a per-user model fitted
  on the user's other (unflagged) workouts, leave-one-out, or against the population when
  the user has none; a whole-run cadence lock by its shape alone. Level statistics are sums,
  so the clean stage collects them in pass 1 and decides in pass 2 with bounded memory.

Pauses (`pause_step`) cut the drive (the runner stood) and restart the warm-up; HR that is
low just after a pause is the heart recovering, never a partial offset, and HR that falls in a
pause inside a would-be lock is the heart relaxing, not a sensor reading the cadence (both seen
on real runs, where watches also hold the last HR value across a pause). The detector
only finds faults and the spans they cover; what to do with each (correct, mask, reject) is
the caller's policy (params.yaml clean.correct.actions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hrpred.clean.config import FAULT_PRECEDENCE, DetectorConfig
from hrpred.clean.pauses import since_pause_s
from hrpred.clean.sensor import (
    RunShape,
    follows_speed,
    grow_lock,
    low_dropouts,
    noisy_segment,
    quiet_lock,
    run_shape,
    slow_lock,
    strap_drying,
)
from hrpred.clean.signal import (
    best_segments,
    exp_smooth,
    grade_from_altitude,
    identical_runs,
    runs_of,
    short_runs,
)
from hrpred.timeseries import interpolate_gaps, rolling_median

N_LEVEL_STATS = 9  # n, sd, st, sdd, sdt, stt, sh, sdh, sth


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
    start: tuple[str, int, str] | None  # (slow_lock | strap_drying, end, reason)
    noisy: tuple[int, int, float] | None  # lagging, noisy segment: (start, end, log ratio)
    quiet: tuple[int, int, float] | None  # lock at nearly the runner's HR: (start, end, score)
    level_drive: np.ndarray  # expected-HR drive of the level model (km/h)
    hours: np.ndarray  # elapsed time (h)
    resume: np.ndarray  # bool: first samples after pauses
    level_mask: np.ndarray  # bool: samples used for the workout's level
    segments: list[tuple[int, int, float, float]]  # change-point candidates passing the
    # thresholds, best first: (start, end exclusive, HR shift vs the rest in BPM, score)
    score: float  # best candidate's RSS drop / noise variance (0 when none)
    stats: np.ndarray  # level sufficient statistics (N_LEVEL_STATS)
    eligible: bool  # may serve as a baseline for the user's other workouts


@dataclass
class LevelModel:
    """Expected HR ~ coef . [1, drive, hours] for one workout, from other workouts."""

    coef: np.ndarray  # (3,)
    k: int  # number of the user's other workouts used (0 = population)


@dataclass
class Verdict:
    """Pass-2 outcome of the detector for one workout (before masking policy)."""

    faults: list[str]  # every fault found, by FAULT_PRECEDENCE
    heart_rate: np.ndarray  # offset-corrected HR
    invalid: np.ndarray  # bool: samples that are not heartbeats (to mask or interpolate):
    # every fault's span but the offsets'
    spans: dict[str, np.ndarray]  # bool samples each fault covers (offsets included)
    offset_kind: str  # none | offset_full | offset_partial
    offset_bpm: float  # BPM added on [offset_start, offset_end)
    offset_start: int  # -1 when none
    offset_end: int
    confidence: float  # in (0, 1]
    deficit_bpm: float  # expected minus observed level (NaN when not computed)
    reason: str  # short human-readable explanation


def equivalent_speed(
    speed: np.ndarray, alt: np.ndarray, ts: np.ndarray, cfg: DetectorConfig
) -> np.ndarray:
    """Grade-adjusted speed (km/h): climbing costs more than the flat, descending less."""
    g = grade_from_altitude(alt, speed, ts, cfg.grade_window_s)
    cost = np.where(g > 0, cfg.grade_cost_up, cfg.grade_cost_down)
    return speed * np.maximum(1.0 + cost * g, 0.3)


def robust_noise(e: np.ndarray) -> float:
    """White-noise SD of a residual from its first differences (MAD), >= 0.5 BPM."""
    if e.size < 3:
        return 1.0
    return max(1.4826 * float(np.median(np.abs(np.diff(e)))) / np.sqrt(2.0), 0.5)


def sample_faults(
    hr: np.ndarray,
    hr_low: float,
    hr_high: float,
    cfg: DetectorConfig,
    pause_step: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(dropout, low, spike, flat) masks.

    A dropout is a run at or below dropout_max_bpm that falls from at least
    dropout_jump_bpm (its neighbours); low samples that do not fall abruptly are only
    'low' (a large offset can push a slow start below the valid range). Spikes are
    measured against a rolling median within each stretch between pauses (`pause_step`:
    first samples after them), so the HR recovered during a pause is no spike. A flatline is
    a run of flatline_run identical values, or the value before a pause repeated right after
    it at least HELD_MIN times (watches hold the last HR across a pause while the heart
    relaxes; up to flatline_run samples).
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
    flat = identical_runs(hr, cfg.flatline_run, ignore=out_low)
    for k in cuts[1:-1]:  # the last value held across a pause: the heart relaxed meanwhile
        held = k
        while held < n and hr[held] == hr[k - 1] and held - k < cfg.flatline_run:
            held += 1
        if held - k >= HELD_MIN:  # fewer: chance repeats of a noisy reading
            flat[k:held] = True
    return dropout, low, spike, flat


def level_stats(d: np.ndarray, t: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Sufficient statistics of the level regression h ~ [1, d, t] over given samples."""
    return np.array(
        [
            d.size,
            d.sum(),
            t.sum(),
            (d * d).sum(),
            (d * t).sum(),
            (t * t).sum(),
            h.sum(),
            (d * h).sum(),
            (t * h).sum(),
        ]
    )


def normal_equations(stats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(X'X, X'y) of the level regression from stacked stats [..., N_LEVEL_STATS]."""
    n, sd, st, sdd, sdt, stt, sh, sdh, sth = np.moveaxis(stats, -1, 0)
    xtx = np.stack(
        [np.stack([n, sd, st], -1), np.stack([sd, sdd, sdt], -1), np.stack([st, sdt, stt], -1)],
        -2,
    )
    xty = np.stack([sh, sdh, sth], -1)
    return xtx, xty


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


def _drying(
    t: np.ndarray,
    hr: np.ndarray,
    normal: np.ndarray,
    level_drive: np.ndarray,
    hours: np.ndarray,
    before_pause: np.ndarray,
    cfg: DetectorConfig,
) -> tuple[str, int, str] | None:
    """A drying strap over the first minutes (before any pause), or None: measured against
    HR expected from the level drive, fitted on the usable run after drying_fit_from_s."""
    late = normal & (t >= cfg.drying_fit_from_s)
    if late.sum() < cfg.level_min_points:
        return None
    X = np.column_stack((np.ones(t.size), level_drive, hours))
    coef, *_ = np.linalg.lstsq(X[late], hr[late], rcond=None)
    expected = X @ coef
    noise = robust_noise(hr[late] - expected[late])
    window = normal & before_pause & (t < cfg.drying_fit_from_s)
    dry = strap_drying(t, hr, expected, noise, window, cfg)
    return None if dry is None else ("strap_drying", dry[0], dry[2])


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
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
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
    dropout, low, spike, flat = sample_faults(hr, hr_low, hr_high, cfg, steps)
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
    if start is None and not whole:
        rest = normal.copy()  # the segments but those that may be the drying itself:
        for first, last, shift, _ in strong:  # a low start, or a high rest after it
            early = t[min(last, n - 1)] <= cfg.drying_fit_from_s and t[first] < cfg.drying_min_s
            high_rest = last == n and t[first] <= cfg.drying_fit_from_s
            if not ((shift < 0 and early) or (shift > 0 and high_rest)):
                rest[first:last] = False
        start = _drying(t, hr, rest, level_drive, hours, before_pause, cfg)
        if start is not None:  # the segments again, without the drying
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
        and start is None
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
        noisy=noisy,
        quiet=quiet,
        level_drive=level_drive,
        hours=hours,
        resume=resume,
        level_mask=level_mask,
        segments=segments,
        score=float(best),
        stats=stats,
        eligible=eligible,
    )


def full_threshold(k: int, cfg: DetectorConfig) -> float:
    """Deficit (BPM) above which a workout reads low as a whole: wider with fewer of the
    user's other workouts (the user's level is less certain), population-wide with none."""
    if k <= 0:
        return cfg.full_pop_min_offset_bpm
    return cfg.full_min_offset_bpm * float(np.sqrt(1.0 + cfg.full_few_workouts / k))


def deficit(model: LevelModel, an: Analysis, hr: np.ndarray, mask: np.ndarray) -> float:
    """Mean expected-minus-observed HR over `mask` (NaN when empty)."""
    if not mask.any():
        return float("nan")
    expected = model.coef[0] + model.coef[1] * an.level_drive[mask] + model.coef[2] * an.hours[mask]
    return float(np.mean(expected - hr[mask]))


def _logistic(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-np.clip(x, -50.0, 50.0))))


def _diff_noise(hr: np.ndarray, mask: np.ndarray) -> float:
    """Sample-to-sample noise of HR on mask: mean |step| without the largest 10 % (real
    transitions). A mean, not a median: HR is recorded in whole BPM, and the median of
    small integer steps barely moves between noisy and steady signals."""
    x = hr[mask]
    if x.size < 4:
        return float("nan")
    steps = np.sort(np.abs(np.diff(x)))
    return float(steps[: max(int(0.9 * steps.size), 1)].mean())


@dataclass
class SegmentCall:
    """What a change-point segment is, once the user's level is known."""

    fault: str  # offset_partial | cadence_lock | cadence_follow | benign
    start: int
    end: int
    offset_bpm: float  # BPM to add on [start, end) for offsets
    confidence: float
    reason: str


def _abrupt(
    hr: np.ndarray, normal: np.ndarray, start: int, end: int, size: float, fraction: float
) -> bool:
    """Whether HR steps into the low part [start, end) and out of it within a couple of
    samples, by at least `fraction` of the shift: a sensor offset switches on at once,
    physiology (a stop, a slower stretch) glides with the HR kinetics."""
    n = hr.size
    x = np.where(normal, hr, np.nan)
    for edge, sign in ((start, 1.0), (end, -1.0)):
        if edge <= 0 or edge >= n:
            continue
        lo, hi = max(edge - 2, 1), min(edge + 3, n)
        steps = sign * (x[lo - 1 : hi - 1] - x[lo:hi])  # drop into / rise out of the part
        steps = steps[np.isfinite(steps)]
        if steps.size == 0 or steps.max() < fraction * size:
            return False
    return True


def _classify_one(
    an: Analysis,
    cand: tuple[int, int, float, float],
    hr: np.ndarray,
    model: LevelModel,
    cfg: DetectorConfig,
) -> SegmentCall:
    """Partial offset, cadence lock (fixed or following the pace) or benign for one
    change-point candidate.

    The candidate splits the workout into a lower and a higher part. The lower part can
    be a partial offset (long enough, entered and left abruptly); the higher part can be
    a cadence lock (long enough, its median HR in the cadence band, and steadier than the
    rest: a lock follows the cadence, not the heart). A middle segment has a split
    complement, so only the segment itself can be the fault. When a segment touching an
    edge allows both readings, the user's level (other workouts) says which part is
    normal; without other workouts, the lock reading wins (its checks are stricter).
    """
    n = hr.size
    a, b, shift, score = cand
    in_seg = np.zeros(n, dtype=bool)
    in_seg[a:b] = True
    inside, outside = in_seg & an.normal, ~in_seg & an.normal
    seg_low = shift < 0
    lower, higher = (inside, outside) if seg_low else (outside, inside)
    edge = a == 0 or b == n
    size = abs(shift)
    conf = _logistic(2.0 * np.log(max(score, 1e-9) / cfg.segment_min_score) + 1.0)
    lo_s, lo_e = _part_bounds((a, b), n, inside=seg_low)
    hi_s, hi_e = _part_bounds((a, b), n, inside=not seg_low)
    hi_med = float(np.median(hr[higher])) if higher.any() else float("nan")
    ratio = _diff_noise(hr, higher) / max(_diff_noise(hr, lower), 1e-9)
    weak = is_weak_lock(a, b, shift, score, n, cfg)
    lock_ok = (
        (edge or not seg_low)
        and hi_e - hi_s >= cfg.segment_min_len
        and cfg.lock_min_bpm <= hi_med <= cfg.lock_max_bpm
        and bool(ratio < (cfg.lock_weak_noise_ratio if weak else cfg.lock_noise_ratio))
    )
    offset_ok = (
        not weak
        and (edge or seg_low)
        and lo_e - lo_s >= cfg.offset_min_len
        and _abrupt(hr, an.normal, lo_s, lo_e, size, cfg.offset_abrupt_fraction)
        and not _soon_after_pause(an, lo_s, cfg.offset_after_pause_s)
    )
    why = ""
    if lock_ok and offset_ok and model.k >= 1:
        d_low = deficit(model, an, hr, lower)
        d_high = deficit(model, an, hr, higher)
        lock_ok = bool(abs(d_low) <= abs(d_high))  # the lower part is the normal one
        offset_ok = not lock_ok
        why = f" (user level: lower part {d_low:+.0f}, higher part {d_high:+.0f} BPM)"
    if lock_ok:
        span = np.zeros(n, dtype=bool)
        span[hi_s:hi_e] = True
        follow, tstat = follows_speed(hr, an.speed, span & an.normal, cfg)
        hi_s, hi_e = grow_lock(hr, an.speed, an.normal, hi_s, hi_e)
        relaxes = _relaxes_in_pause(an, hr, hi_s, hi_e, cfg.lock_pause_drop_bpm)
        if relaxes:
            return SegmentCall("benign", a, b, 0.0, conf, f"HR high on [{hi_s},{hi_e}) {relaxes}")
        what = "the cadence" if follow else "a fixed value"
        return SegmentCall(
            "cadence_follow" if follow else "cadence_lock",
            hi_s,
            hi_e,
            0.0,
            conf,
            f"HR locked at {hi_med:.0f} ({size:.0f} BPM above the rest, noise x{ratio:.2f}, "
            f"{what}: speed slope t={tstat:.1f}) on [{hi_s},{hi_e}){why}",
        )
    if offset_ok:
        return SegmentCall(
            "offset_partial",
            lo_s,
            lo_e,
            size,
            conf,
            f"HR {size:.0f} BPM low on [{lo_s},{lo_e}){why}",
        )
    return SegmentCall(
        "benign", a, b, 0.0, conf, f"HR shift {shift:+.0f} BPM on [{a},{b}) not a sensor fault"
    )


def _relaxes_in_pause(an: Analysis, hr: np.ndarray, start: int, end: int, drop_bpm: float) -> str:
    """Why [start, end) is the heart, not a lock ('' when nothing says so): HR falls by at
    least `drop_bpm` across a pause inside it (median of the last 3 usable samples before
    the pause minus the lowest usable sample of the 20 after it; watches may hold the last
    value for a while). A locked sensor reads the runner's cadence, not a heart relaxing
    while the runner stands."""
    if drop_bpm <= 0:
        return ""
    for r in np.flatnonzero(an.resume[start + 1 : end]) + start + 1:
        before = hr[max(r - 6, 0) : r][an.normal[max(r - 6, 0) : r]][-3:]
        after = hr[r : r + 20][an.normal[r : r + 20]]
        if before.size and after.size and np.median(before) - after.min() >= drop_bpm:
            return f"relaxes by {np.median(before) - after.min():.0f} BPM in the pause at {r}"
    return ""


def _soon_after_pause(an: Analysis, start: int, within_s: float) -> bool:
    """Whether sample `start` comes less than `within_s` after a pause's first sample: a low
    part entered there is the heart recovering from the stop (watches also hold the last HR
    across a pause, so the drop can come a few samples late), not a sensor reading low."""
    before = np.flatnonzero(an.resume[: start + 1])
    return bool(before.size) and 3600.0 * (an.hours[start] - an.hours[before[-1]]) < within_s


def _part_bounds(seg: tuple[int, int], n: int, inside: bool) -> tuple[int, int]:
    """Bounds of the segment itself, or of its complement when the segment touches an edge."""
    a, b = seg
    if inside:
        return a, b
    return (b, n) if a == 0 else (0, a)


def classify_segment(
    an: Analysis, hr: np.ndarray, model: LevelModel, cfg: DetectorConfig
) -> SegmentCall | None:
    """The first change-point candidate (best score first) that is a sensor fault, else
    the best candidate's benign call; None without candidates."""
    calls = [_classify_one(an, c, hr, model, cfg) for c in an.segments]
    for call in calls:
        if call.fault != "benign":
            return call
    return calls[0] if calls else None


def _quiet_call(an: Analysis, hr: np.ndarray, cfg: DetectorConfig) -> SegmentCall:
    """The lock call of a quiet segment (sensor.quiet_lock): fixed or following the pace."""
    assert an.quiet is not None
    a, b, score = an.quiet
    span = np.zeros(hr.size, dtype=bool)
    span[a:b] = True
    follow, tstat = follows_speed(hr, an.speed, span & an.normal, cfg)
    a, b = grow_lock(hr, an.speed, an.normal, a, b)
    conf = _logistic(2.0 * np.log(score / cfg.quiet_min_score) + 1.0)
    relaxes = _relaxes_in_pause(an, hr, a, b, cfg.lock_pause_drop_bpm)
    if relaxes:
        return SegmentCall("benign", a, b, 0.0, conf, f"steady HR on [{a},{b}) {relaxes}")
    med = float(np.median(hr[span & an.normal]))
    what = "the cadence" if follow else "a fixed value"
    return SegmentCall(
        "cadence_follow" if follow else "cadence_lock",
        a,
        b,
        0.0,
        conf,
        f"HR locked at {med:.0f} (steady like a sensor, not a heart: score {score:.0f}; "
        f"{what}: speed slope t={tstat:.1f}) on [{a},{b})",
    )


def _span(n: int, start: int, end: int, margin: int = 0) -> np.ndarray:
    """Samples [start - margin, end + margin) of n."""
    out = np.zeros(n, dtype=bool)
    out[max(start - margin, 0) : end + margin] = True
    return out


def decide(
    an: Analysis,
    hr: np.ndarray,
    model: LevelModel,
    gps_fault: bool,
    hr_low: float,
    hr_high: float,
    cfg: DetectorConfig,
) -> Verdict:
    """Pass 2: every fault found with the samples it covers, the offset-corrected HR, the
    invalid-sample mask, the offset applied, a confidence, the level deficit and a reason.

    In order: a whole-run cadence lock (shape alone) or stuck-low reading (shape and a
    level deficit beyond the full-offset threshold) covers the whole run and ends the
    search; else a start fault, the change-point segment (a partial offset or a lock; when
    it is none or benign, a quiet lock at nearly the runner's own HR, if any), a
    lagging noisy segment (unless the segment lies inside it: the lag explains the shift),
    a full offset when no segment fault was found, and the sample faults.

    The spans of a start fault, a lock and a noisy segment are widened by span_margin
    samples each side (their boundaries are estimates; a partial offset's are exact).
    Masks only: the caller applies each fault's action (correct, mask, reject), turns masks
    into masking or interpolation and checks the share of bad samples.
    """
    n = hr.size
    faults: list[str] = []
    reasons: list[str] = []
    spans: dict[str, np.ndarray] = {}
    corrected = hr.astype(np.float64, copy=True)
    offset: tuple[str, float, int, int] = ("none", 0.0, -1, -1)
    confidence = 1.0
    d = deficit(model, an, hr, an.level_mask)
    thr = full_threshold(model.k, cfg)
    basis = f"{model.k} other workouts" if model.k else "population"
    shape = an.shape
    whole = ""
    if shape.whole_lock(cfg):
        whole = "whole_run_lock"
        reasons.append(
            f"whole run locked: starts at {shape.start_bpm:.0f}, rises {shape.rise_bpm:+.0f}, "
            f"follows speed without lag (R2 {shape.r2_instant:.2f} vs {shape.r2_lagged:.2f})"
        )
    elif shape.stuck(cfg) and np.isfinite(d) and d > thr:
        whole = "stuck_low"
        reasons.append(
            f"stuck low: 95% of HR <= {shape.p95_bpm:.0f}, rises {shape.rise_bpm:+.0f}, "
            f"{d:.0f} BPM below expected ({basis}; threshold {thr:.0f})"
        )
    if whole:
        spans[whole] = np.ones(n, dtype=bool)
        return Verdict(
            [whole], corrected, np.ones(n, dtype=bool), spans, "none", 0.0, -1, -1, 1.0, d,
            "; ".join(reasons),
        )  # fmt: skip
    if an.start is not None:
        kind, end, why = an.start
        faults.append(kind)
        spans[kind] = _span(n, 0, end, cfg.span_margin)
        reasons.append(why)
    call = classify_segment(an, hr, model, cfg)
    if call is not None and an.noisy is not None and call.fault != "benign":
        a, b, _ = an.noisy
        if a <= call.start and call.end <= b:
            reasons.append(f"({call.reason}: inside the noisy segment)")
            call = None
    if (call is None or call.fault == "benign") and an.quiet is not None:
        call = _quiet_call(an, hr, cfg)
    if call is not None:
        reasons.append(call.reason)
        confidence = call.confidence
        if call.fault == "offset_partial":
            corrected[call.start : call.end] += call.offset_bpm
            offset = ("offset_partial", call.offset_bpm, call.start, call.end)
        if call.fault != "benign":
            faults.append(call.fault)
            margin = 0 if call.fault == "offset_partial" else cfg.span_margin
            spans[call.fault] = _span(n, call.start, call.end, margin)
    if an.noisy is not None:
        a, b, ratio = an.noisy
        faults.append("lagging_noisy")
        spans["lagging_noisy"] = _span(n, a, b, cfg.span_margin)
        reasons.append(f"noisy segment [{a},{b}): step changes x{np.exp(ratio / 2):.1f}")
    if call is None or call.fault == "benign":
        if np.isfinite(d) and d > thr:
            corrected += d
            offset = ("offset_full", d, 0, n)
            faults.append("offset_full")
            spans["offset_full"] = np.ones(n, dtype=bool)
            confidence = _logistic((d - thr) / cfg.full_noise_bpm)
            reasons.append(f"HR {d:.0f} BPM below expected ({basis}; threshold {thr:.0f})")
        elif np.isfinite(d):
            confidence = _logistic((thr - d) / cfg.full_noise_bpm)
    for name, mask in (
        ("flatline", an.flat),
        ("low_dropout", an.low_dropout),
        ("dropout", an.dropout),
        ("spike", an.spike),
    ):
        if mask.any():
            faults.append(name)
            spans[name] = mask
            reasons.append(f"{name}: {int(mask.sum())} samples")
    if gps_fault:
        faults.append("gps_corruption")
        reasons.append("GPS/speed spikes repaired")
    invalid = np.zeros(n, dtype=bool)
    for name, mask in spans.items():
        if name not in ("offset_full", "offset_partial"):
            invalid |= mask
    invalid |= (corrected < hr_low) | (corrected > hr_high)
    faults.sort(key=FAULT_PRECEDENCE.index)
    kind, bpm, start, end = offset
    return Verdict(
        faults, corrected, invalid, spans, kind, bpm, start, end, confidence, d,
        "; ".join(reasons),
    )  # fmt: skip
