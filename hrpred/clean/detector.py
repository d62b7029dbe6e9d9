"""Deterministic anomaly detector (replaces the reference's LLM triage).

Physiology gives every step an expected HR: HR follows a first-order response to the
grade-adjusted speed ("drive"), plus a slow drift and a warm-up transient. On one workout:
- sample faults: dropouts (HR falls to ~0), spikes (short excursions from the rolling
  median), flatlines (a stuck value), out-of-range samples;
- segment faults: the single segment whose HR shift best explains HR beyond the expected
  model (change point on the HR-minus-expected residual, fitted jointly with the model).
  A segment reading low is a partial offset, one jumping high and flat into the cadence
  band is a cadence lock;
- full offsets need the user's other workouts: the workout's level against a per-user
  model fitted on the user's other (unflagged) workouts, leave-one-out, or against the
  population when the user has none. Level statistics are sums, so the clean stage
  collects them in pass 1 and decides in pass 2 with bounded memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hrpred.clean.config import DetectorConfig
from hrpred.clean.signal import (
    best_segments,
    exp_smooth,
    grade_from_altitude,
    identical_runs,
    runs_of,
    short_runs,
)
from hrpred.timeseries import interpolate_gaps, rolling_median

# Faults the detector can name, by precedence when a workout shows several.
FAULT_PRECEDENCE = (
    "offset_partial",
    "cadence_lock",
    "offset_full",
    "flatline",
    "dropout",
    "spike",
    "gps_corruption",
)
N_LEVEL_STATS = 9  # n, sd, st, sdd, sdt, stt, sh, sdh, sth


@dataclass
class Analysis:
    """Pass-1 findings on one workout (arrays have the workout's length)."""

    dropout: np.ndarray  # bool: abrupt falls to ~0
    low: np.ndarray  # bool: other samples below the valid range (may be an offset)
    spike: np.ndarray  # bool
    flat: np.ndarray  # bool
    normal: np.ndarray  # bool: none of the above
    level_drive: np.ndarray  # expected-HR drive of the level model (km/h)
    hours: np.ndarray  # elapsed time (h)
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
    invalid: np.ndarray  # bool: samples that are not heartbeats (to mask or interpolate)
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
    hr: np.ndarray, hr_low: float, hr_high: float, cfg: DetectorConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(dropout, low, spike, flat) masks.

    A dropout is a run at or below dropout_max_bpm that falls from at least
    dropout_jump_bpm (its neighbours); low samples that do not fall abruptly are only
    'low' (a large offset can push a slow start below the valid range).
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
    med = rolling_median(base, cfg.spike_window)
    spike = short_runs(np.abs(hr - med) > cfg.spike_bpm, cfg.spike_max_run) & ~out_low
    spike |= hr > hr_high
    flat = identical_runs(hr, cfg.flatline_run, ignore=out_low)
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


def analyse(
    ts: np.ndarray,
    hr: np.ndarray,
    speed: np.ndarray,
    alt: np.ndarray,
    hr_low: float,
    hr_high: float,
    cfg: DetectorConfig,
) -> Analysis:
    """Pass 1 on one workout: sample faults, change-point segment, level statistics."""
    n = hr.size
    t = (ts - ts[0]).astype(np.float64)
    dropout, low, spike, flat = sample_faults(hr, hr_low, hr_high, cfg)
    normal = ~(dropout | low | spike | flat)
    eq = equivalent_speed(speed, alt, ts, cfg)
    hours = t / 3600.0
    idx = np.flatnonzero(normal)
    segments: list[tuple[int, int, float, float]] = []
    best = 0.0
    noise = 1.0
    if idx.size >= 2 * cfg.segment_min_len + 2:
        X = np.column_stack(
            (
                np.ones(idx.size),
                exp_smooth(eq, ts, cfg.tau_fast_s, y0=0.0)[idx],
                exp_smooth(eq, ts, cfg.tau_slow_s, y0=0.0)[idx],
                hours[idx],
                np.exp(-t[idx] / cfg.tau_start_s),
            )
        )
        y = hr[idx]
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        noise = robust_noise(y - X @ coef)
        for a, b, shift, drop in best_segments(y, X, cfg.segment_min_len, cfg.segment_grid):
            score = drop / noise**2
            best = max(best, score)
            if b <= a:
                continue
            start = 0 if a == 0 else int(idx[a])
            end = n if b >= idx.size else int(idx[b])
            if score >= cfg.segment_min_score and abs(shift) >= cfg.segment_min_shift_bpm:
                segments.append((start, end, float(shift), float(score)))
            elif is_weak_lock(start, end, shift, score, n, cfg):
                segments.append((start, end, float(shift), float(score)))
        segments.sort(key=lambda c: -c[3])
    strong = [c for c in segments if not is_weak_lock(*c, n, cfg)]
    level_drive = exp_smooth(eq, ts, cfg.level_tau_s, y0=0.0)
    level_mask = normal & (t >= cfg.level_warmup_s)
    for start, end, _, _ in strong:
        level_mask[start:end] = False
    stats = level_stats(level_drive[level_mask], hours[level_mask], hr[level_mask])
    eligible = not strong and int(level_mask.sum()) >= cfg.level_min_points
    return Analysis(
        dropout=dropout,
        low=low,
        spike=spike,
        flat=flat,
        normal=normal,
        level_drive=level_drive,
        hours=hours,
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

    fault: str  # offset_partial | cadence_lock | benign
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
    """Partial offset, cadence lock or benign for one change-point candidate.

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
    )
    why = ""
    if lock_ok and offset_ok and model.k >= 1:
        d_low = deficit(model, an, hr, lower)
        d_high = deficit(model, an, hr, higher)
        lock_ok = bool(abs(d_low) <= abs(d_high))  # the lower part is the normal one
        offset_ok = not lock_ok
        why = f" (user level: lower part {d_low:+.0f}, higher part {d_high:+.0f} BPM)"
    if lock_ok:
        return SegmentCall(
            "cadence_lock",
            hi_s,
            hi_e,
            0.0,
            conf,
            f"HR locked at {hi_med:.0f} ({size:.0f} BPM above the rest, noise x{ratio:.2f}) "
            f"on [{hi_s},{hi_e}){why}",
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


def decide(
    an: Analysis,
    hr: np.ndarray,
    model: LevelModel,
    gps_fault: bool,
    hr_low: float,
    hr_high: float,
    cfg: DetectorConfig,
) -> Verdict:
    """Pass 2: every fault found, the offset-corrected HR, the invalid-sample mask, the
    offset applied, a confidence, the level deficit and a reason.

    Masks only: the caller turns them into masking or interpolation and checks the
    share of bad samples.
    """
    n = hr.size
    faults: list[str] = []
    reasons: list[str] = []
    corrected = hr.astype(np.float64, copy=True)
    locked = np.zeros(n, dtype=bool)
    offset: tuple[str, float, int, int] = ("none", 0.0, -1, -1)
    confidence = 1.0
    d = float("nan")
    call = classify_segment(an, hr, model, cfg)
    if call is not None:
        reasons.append(call.reason)
        confidence = call.confidence
        if call.fault == "offset_partial":
            corrected[call.start : call.end] += call.offset_bpm
            offset = ("offset_partial", call.offset_bpm, call.start, call.end)
            faults.append("offset_partial")
        elif call.fault == "cadence_lock":
            locked[call.start : call.end] = True
            faults.append("cadence_lock")
    if call is None or call.fault == "benign":
        d = deficit(model, an, hr, an.level_mask)
        thr = full_threshold(model.k, cfg)
        basis = f"{model.k} other workouts" if model.k else "population"
        if np.isfinite(d) and d > thr:
            corrected += d
            offset = ("offset_full", d, 0, n)
            faults.append("offset_full")
            confidence = _logistic((d - thr) / cfg.full_noise_bpm)
            reasons.append(f"HR {d:.0f} BPM below expected ({basis}; threshold {thr:.0f})")
        elif np.isfinite(d):
            confidence = _logistic((thr - d) / cfg.full_noise_bpm)
    for name, mask in (("flatline", an.flat), ("dropout", an.dropout), ("spike", an.spike)):
        if mask.any():
            faults.append(name)
            reasons.append(f"{name}: {int(mask.sum())} samples")
    if gps_fault:
        faults.append("gps_corruption")
        reasons.append("GPS/speed spikes repaired")
    invalid = an.dropout | an.spike | an.flat | locked
    invalid |= (corrected < hr_low) | (corrected > hr_high)
    faults.sort(key=FAULT_PRECEDENCE.index)
    kind, bpm, start, end = offset
    return Verdict(
        faults, corrected, invalid, kind, bpm, start, end, confidence, d, "; ".join(reasons)
    )
