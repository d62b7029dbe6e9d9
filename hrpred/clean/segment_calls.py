"""What one change-point segment (or quiet segment) of a workout is once the runner's level
model is known (`SegmentCall`): a partial offset, a cadence lock above or below the heart
(fixed or following the pace) or benign (`classify_segment`), and the call of a quiet lock
(`quiet_call`). Used by pass 2's `hrpred.clean.classify.decide`; the overview is
`hrpred.clean.detector`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hrpred.clean.analysis import Analysis, is_weak_lock
from hrpred.clean.config import DetectorConfig
from hrpred.clean.level import LevelModel
from hrpred.clean.locks import (
    WHITE,
    follows_speed,
    grow_lock,
    lock_signature,
    switching_edges,
    white_ratio,
)
from hrpred.clean.numeric import diff, lstsq, median


def deficit(model: LevelModel, an: Analysis, hr: np.ndarray, mask: np.ndarray) -> float:
    """Mean expected-minus-observed HR over `mask` (NaN when empty)."""
    if not mask.any():
        return float("nan")
    expected = model.coef[0] + model.coef[1] * an.level_drive[mask] + model.coef[2] * an.hours[mask]
    return float(np.mean(expected - hr[mask]))


def logistic(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-np.clip(x, -50.0, 50.0))))


def _diff_noise(hr: np.ndarray, mask: np.ndarray) -> float:
    """Sample-to-sample noise of HR on mask: mean |step| without the largest 10 % (real
    transitions). A mean, not a median: HR is recorded in whole BPM, and the median of
    small integer steps barely moves between noisy and steady signals."""
    x = hr[mask]
    if x.size < 4:
        return float("nan")
    steps = np.sort(np.abs(diff(x)))
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
    complement, so only the segment itself can be the fault. The user's level (other
    workouts) says which part is normal: a lock's lower part must read nearer the runner's
    level than its higher part, which reads lock_above_level of the shift above it (real
    runs: a high-HR runner's tempo after a warm-up or a low start is no lock), unless the
    two parts straddle the level (the lower below it, the higher above: a low day of the
    runner's under a lock, or a high day over an offset) and their signatures say which
    is the sensor (`_sensor_over_heart`), and it decides between both readings; without
    other workouts,
    the lock reading wins when the high part reads white about a line in the speed (a
    sensor), else the offset. When the high part is no lock, the lower part may be one
    (`_low_lock`: a cadence read below the heart), which wins over the offset reading.
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
    conf = logistic(2.0 * np.log(max(score, 1e-9) / cfg.segment_min_score) + 1.0)
    lo_s, lo_e = _part_bounds((a, b), n, inside=seg_low)
    hi_s, hi_e = _part_bounds((a, b), n, inside=not seg_low)
    hi_med = median(hr[higher]) if higher.any() else float("nan")
    ratio = _diff_noise(hr, higher) / max(_diff_noise(hr, lower), 1e-9)
    weak = is_weak_lock(a, b, shift, score, n, cfg)
    lock_ok = (
        (edge or not seg_low)
        and hi_e - hi_s >= cfg.segment_min_len
        and cfg.lock_min_bpm <= hi_med <= cfg.lock_max_bpm
        and bool(ratio < _noise_limit(an, hr, higher, size, weak, model, cfg))
    )
    signature = ""
    if lock_ok:  # a lock's signature, not just a high, quiet HR (a heart at tempo)
        resid = _residual(an, hr, (hi_s, hi_e))
        lock_ok, signature = lock_signature(
            hr, resid, an.speed, an.since_s, (hi_s, hi_e), size, cfg
        )
    offset_ok = (
        not weak
        and (edge or seg_low)
        and size >= cfg.offset_min_shift_bpm
        and lo_e - lo_s >= cfg.offset_min_len
        and not _soon_after_pause(an, lo_s, cfg.offset_after_pause_s)
    )
    if offset_ok:  # a sensor reading low throughout, switched on and off
        resid = _residual(an, hr, (lo_s, lo_e))
        offset_ok = (
            _apart_share(resid, (lo_s, lo_e), size) >= cfg.offset_min_share
            and switching_edges(resid, an.speed, an.since_s, (lo_s, lo_e), -1.0, size, cfg)[0]
        )
    low_lock = None
    if not lock_ok and not weak and (edge or seg_low):
        low_lock = _low_lock(an, hr, lower, higher, (lo_s, lo_e), size, model, cfg)
        offset_ok = offset_ok and low_lock is None
    why = ""
    if (offset_ok or lock_ok) and model.k >= 1:
        d_low = deficit(model, an, hr, lower)
        d_high = deficit(model, an, hr, higher)
        why = _user_level(d_low, d_high)
        if lock_ok:  # a lock reads above the runner's level, the rest nearer it
            nearer = abs(d_low) <= abs(d_high) or (
                not weak
                and d_low > 0
                and _sensor_over_heart(white_ratio(hr, an.speed, higher), an, hr, lower, cfg)
            )
            lock_ok = bool(nearer and -d_high >= cfg.lock_above_level * size)
            offset_ok = offset_ok and not lock_ok
        else:  # an offset reads low against the runner's own level too
            offset_ok = bool(d_low >= 0.5 * size and d_low > abs(d_high))
    elif offset_ok and lock_ok:  # no level: switching edges fit both; a lock reads white
        lock_ok = signature.startswith(WHITE)
        offset_ok = not lock_ok
    if lock_ok:
        head = f"HR locked at {hi_med:.0f} ({size:.0f} BPM above the rest, noise x{ratio:.2f}, "
        return _lock_call(an, hr, (hi_s, hi_e), conf, head + signature + ", ", why, "HR high", cfg)
    if low_lock is not None:
        lo_head, lo_why = low_lock
        return _lock_call(an, hr, (lo_s, lo_e), conf, lo_head + ", ", lo_why, "HR low", cfg)
    if offset_ok:
        return SegmentCall(
            "offset_partial",
            lo_s,
            lo_e,
            size,
            conf,
            f"HR {size:.0f} BPM low on [{lo_s},{lo_e}){why}",
        )
    not_lock = f" ({signature})" if signature else ""
    return SegmentCall(
        "benign",
        a,
        b,
        0.0,
        conf,
        f"HR shift {shift:+.0f} BPM on [{a},{b}) not a sensor fault{not_lock}",
    )


def _user_level(d_low: float, d_high: float) -> str:
    """The reason's note of the two parts' deficits under the runner's level model."""
    return f" (user level: lower part {d_low:+.0f}, higher part {d_high:+.0f} BPM)"


def _sensor_over_heart(
    sensor_white: float, an: Analysis, hr: np.ndarray, heart: np.ndarray, cfg: DetectorConfig
) -> bool:
    """Whether the sensor part (its `white_ratio`: `sensor_white`) reads like a lock and
    the `heart` part like a heart, when the runner's level cannot tell (the parts straddle
    it): the sensor part white about a line in the speed (at most quiet_max_white, the
    quiet lock's test, stricter than the signature's lock_max_white) and the heart part
    wandering about its own line beyond what a sensor reads (above lock_max_white). A heart at tempo wanders (x5-60: the real
    high-HR runners' tempo the level test guards against) and an offset keeps the heart's
    wander, so neither a tempo after a warm-up nor an offset reads this way."""
    return (
        sensor_white <= cfg.quiet_max_white
        and white_ratio(hr, an.speed, heart) > cfg.lock_max_white
    )


def _low_lock(
    an: Analysis,
    hr: np.ndarray,
    lower: np.ndarray,
    higher: np.ndarray,
    part: tuple[int, int],
    size: float,
    model: LevelModel,
    cfg: DetectorConfig,
) -> tuple[str, str] | None:
    """(what the lower part [start, end) of a change-point candidate reads like, its user
    level) when it reads like a lock on the cadence below the heart, else None.

    A sensor locked onto the arm swing reads the cadence whether the heart beats faster or
    slower: a runner whose heart sits above their cadence reads low while locked. Such a
    part is a partial offset by its edges, but an offset keeps the heart's own dynamics (it
    wanders about any line in the speed) while the lock reads white noise about one. So:
    at least segment_min_len samples, its median HR in [lock_min_bpm, lock_max_bpm] and
    below the rest's in HR itself (not only against the drive model: a heart lagging a
    sprint at the end of a run reads low only there), steadier than the rest (noise ratio
    below lock_noise_ratio) and white about a line in the speed (at most quiet_max_white,
    the quiet lock's test: stricter than the high lock's, for the offset reading is as
    likely). With the runner's other runs, it reads lock_above_level of the shift below
    their level, and the rest nearer it or, the parts straddling it, the rest wandering
    like a heart (`_sensor_over_heart`; the high lock's test, mirrored)."""
    start, end = part
    if end - start < cfg.segment_min_len or not (lower.any() and higher.any()):
        return None
    lo_med, hi_med = median(hr[lower]), median(hr[higher])
    if not (cfg.lock_min_bpm <= lo_med <= cfg.lock_max_bpm and lo_med < hi_med):
        return None
    ratio = _diff_noise(hr, lower) / max(_diff_noise(hr, higher), 1e-9)
    white = white_ratio(hr, an.speed, lower)
    if not (ratio < cfg.lock_noise_ratio and white <= cfg.quiet_max_white):
        return None
    why = ""
    if model.k >= 1:
        d_low, d_high = deficit(model, an, hr, lower), deficit(model, an, hr, higher)
        nearer = abs(d_high) <= abs(d_low) or (
            d_high < 0 and _sensor_over_heart(white, an, hr, higher, cfg)
        )
        if not (d_low >= cfg.lock_above_level * size and nearer):
            return None
        why = _user_level(d_low, d_high)
    head = f"HR locked at {lo_med:.0f} ({size:.0f} BPM below the rest, noise x{ratio:.2f}, "
    return f"{head}{WHITE} x{white:.1f}", why


def _lock_call(
    an: Analysis,
    hr: np.ndarray,
    part: tuple[int, int],
    conf: float,
    head: str,
    why: str,
    what_part: str,
    cfg: DetectorConfig,
) -> SegmentCall:
    """The lock call on `part` [start, end) (the high or low part of a candidate, or a quiet
    segment): fixed or following the pace (`follows_speed` on the part), spanned by
    `grow_lock`; benign when HR relaxes in a pause inside it. `head` opens the reason (what
    the part reads like, with its separator), `why` closes it (the user level); `what_part`
    names the part in a benign call ("HR high", "steady HR")."""
    s, e = part
    span = np.zeros(hr.size, dtype=bool)
    span[s:e] = True
    follow, tstat = follows_speed(hr, an.speed, span & an.normal, cfg)
    s, e = grow_lock(hr, an.speed, an.normal, s, e)
    relaxes = _relaxes_in_pause(an, hr, s, e, cfg.lock_pause_drop_bpm)
    if relaxes:
        return SegmentCall("benign", s, e, 0.0, conf, f"{what_part} on [{s},{e}) {relaxes}")
    what = "the cadence" if follow else "a fixed value"
    return SegmentCall(
        "cadence_follow" if follow else "cadence_lock",
        s,
        e,
        0.0,
        conf,
        f"{head}{what}: speed slope t={tstat:.1f}) on [{s},{e}){why}",
    )


def _noise_limit(
    an: Analysis,
    hr: np.ndarray,
    higher: np.ndarray,
    size: float,
    weak: bool,
    model: LevelModel,
    cfg: DetectorConfig,
) -> float:
    """Largest noise ratio (the high part's sample-to-sample noise over the rest's) a lock
    may have: lock_noise_ratio (lock_weak_noise_ratio for a weak segment), or
    lock_level_noise_ratio when the high part reads white about a line in the speed (at
    most quiet_max_white, the quiet lock's test) and the runner's other runs say it reads
    far above them (by lock_level_vouch of the shift and lock_level_min_bpm at least): a
    cadence read at a steady pace is no steadier than the heart there, and the level tells
    the reading from the runner's own HR (the signature and level tests still apply)."""
    limit = cfg.lock_weak_noise_ratio if weak else cfg.lock_noise_ratio
    if model.k < 1 or white_ratio(hr, an.speed, higher) > cfg.quiet_max_white:
        return limit
    above = -deficit(model, an, hr, higher)
    if above >= max(cfg.lock_level_vouch * size, cfg.lock_level_min_bpm):
        return max(limit, cfg.lock_level_noise_ratio)
    return limit


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
        if before.size and after.size and median(before) - after.min() >= drop_bpm:
            return f"relaxes by {median(before) - after.min():.0f} BPM in the pause at {r}"
    return ""


def _residual(an: Analysis, hr: np.ndarray, part: tuple[int, int]) -> np.ndarray:
    """HR minus HR expected from the level drive, fitted on the usable samples outside
    `part` (NaN where HR is not usable; all NaN when too few samples are left to fit)."""
    a, b = part
    rest = an.normal.copy()
    rest[a:b] = False
    out = np.full(hr.size, np.nan)
    if rest.sum() < 10:
        return out
    X = np.column_stack((np.ones(hr.size), an.level_drive, an.hours))
    coef = lstsq(X[rest], hr[rest])
    out[an.normal] = hr[an.normal] - X[an.normal] @ coef
    return out


def _apart_share(resid: np.ndarray, part: tuple[int, int], size: float) -> float:
    """Share of the usable samples of `part` reading at least half of `size` below the
    expected HR (`resid`: `_residual`): a sensor offset moves every sample, a misfit of the
    model (a walk, a hill) only some."""
    r = resid[part[0] : part[1]]
    r = r[np.isfinite(r)]
    return float(np.mean(r <= -0.5 * size)) if r.size else 0.0


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


def quiet_call(an: Analysis, hr: np.ndarray, cfg: DetectorConfig) -> SegmentCall:
    """The lock call of a quiet segment (sensor.quiet_lock): fixed or following the pace."""
    assert an.quiet is not None
    a, b, score = an.quiet
    med = median(hr[a:b][an.normal[a:b]])
    conf = logistic(2.0 * np.log(score / cfg.quiet_min_score) + 1.0)
    head = f"HR locked at {med:.0f} (steady like a sensor, not a heart: score {score:.0f}; "
    return _lock_call(an, hr, (a, b), conf, head, "", "steady HR", cfg)
