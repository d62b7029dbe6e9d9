"""Stage-1 rule checks (the reference's checks, every threshold a param).

Two kinds of rule:
- `structural_reason`: the workout cannot be used at all (lengths, timestamps, altitude
  range, too short...). Returns a reject reason. Gaps (steps longer than PAUSE_MIN_S) reject
  here only under `gap_action: reject`; under `pause` they are judged later (hrpred/clean/pauses.py).
- `rule_flags`: content checks on HR, speed, timestamps and altitude. They never reject
  by themselves; they are evidence for the detector and go to the per-workout report.
  Speed-based checks run on the speed chosen for every workout (native or GPS).
"""

from __future__ import annotations

import numpy as np

from hrpred.clean.config import RuleConfig
from hrpred.clean.numeric import diff, std
from hrpred.clean.pauses import PAUSE_MIN_S
from hrpred.clean.workout import Workout

# Informational checks (the reference computed them but never acted on them).
INFO_FLAGS = frozenset({"hr_speed_mismatch", "timestamp_duplicate", "timestamp_irregular"})


def structural_reason(w: Workout, cfg: RuleConfig) -> str | None:
    """Reject reason for a workout whose arrays cannot be used, checked in this order."""
    n = w.hr.size
    if n == 0:
        return "missing_hr"
    if w.ts.size == 0:
        return "missing_timestamp"
    if w.alt.size == 0:
        return "missing_altitude"
    lengths = [w.ts.size, w.alt.size]
    lengths += [a.size for a in (w.speed, w.lat, w.lon) if a is not None]
    if any(size != n for size in lengths):
        return "length_mismatch"
    if n < cfg.min_points:
        return "too_few_points"
    dts = diff(w.ts)
    if (dts < 0).any():
        return "timestamp_nonmonotonic"
    if (w.ts[-1] - w.ts[0]) / 60.0 < cfg.min_duration_min:
        return "too_short"
    if cfg.gap_action == "reject" and (dts > PAUSE_MIN_S).any():
        return "timestamp_gap"
    if (w.alt < cfg.altitude_min_m).any() or (w.alt > cfg.altitude_max_m).any():
        return "altitude_unrealistic"
    return None


def longest_run(x: np.ndarray) -> tuple[int, int]:
    """(length, start) of the longest run of identical consecutive values."""
    n = x.size
    if n == 0:
        return 0, 0
    starts = np.flatnonzero(np.concatenate(([True], x[1:] != x[:-1])))
    lengths = diff(np.append(starts, n))
    k = int(np.argmax(lengths))
    return int(lengths[k]), int(starts[k])


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant or too short. Values too large
    to square (hostile input) give NaN (which the rules skip) or 0, without a warning."""
    if x.size < 2:
        return float("nan")
    with np.errstate(over="ignore", invalid="ignore"):
        xc = x - x.mean()
        yc = y - y.mean()
        denom = np.sqrt((xc * xc).sum() * (yc * yc).sum())
        return float((xc * yc).sum() / denom) if denom > 0 else float("nan")


def sudden_changes(
    ts: np.ndarray, hr: np.ndarray, window_s: float, max_lag: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per start index i: the most negative and most positive hr[j]-hr[i] with j>i and
    ts[j]-ts[i] < window_s (0 when no such j). Loops over lags, not points."""
    n = hr.size
    drop = np.zeros(n)
    rise = np.zeros(n)
    for lag in range(1, min(max_lag, n - 1) + 1):
        within = (ts[lag:] - ts[:-lag]) < window_s
        if not within.any():
            break
        d = np.where(within, hr[lag:] - hr[:-lag], 0.0)
        np.minimum(drop[:-lag], d, out=drop[:-lag])
        np.maximum(rise[:-lag], d, out=rise[:-lag])
    return drop, rise


def rule_flags(
    ts: np.ndarray,
    hr: np.ndarray,
    alt: np.ndarray,
    speed_raw: np.ndarray,
    speed: np.ndarray,
    cfg: RuleConfig,
) -> dict[str, float]:
    """Every content rule that fires, with a number describing it (count or measure).

    `speed_raw` is the speed before spike repair (native or GPS-derived), `speed` the
    repaired one. Flag names follow the reference codes (comments).
    """
    flags: dict[str, float] = {}
    n = hr.size
    dhr = diff(hr)
    if (hr == 0).any():  # HR01
        flags["hr_zero"] = float((hr == 0).sum())
    low = int((hr < cfg.hr_low_bpm).sum())
    if low:  # HR02
        flags["hr_too_low"] = float(low)
    high = int((hr > cfg.hr_high_bpm).sum())
    if high:  # HR03
        flags["hr_too_high"] = float(high)
    if (np.abs(dhr) > cfg.hr_step_spike_bpm).any():  # HR04
        flags["hr_spike"] = float((np.abs(dhr) > cfg.hr_step_spike_bpm).sum())
    run, _ = longest_run(hr)
    if run > cfg.flatline_run:  # HR05
        flags["hr_flatline"] = float(run)
    with np.errstate(over="ignore"):  # hostile values too large to square: inf, no flag
        hr_std = std(hr)
    if hr_std < cfg.low_std_bpm and n > cfg.low_std_min_points:  # HR06
        flags["hr_low_variance"] = hr_std
    drop, rise = sudden_changes(ts, hr, cfg.sudden_window_s, cfg.sudden_max_lag)
    if (drop < -cfg.sudden_change_bpm).any():  # HR07
        flags["hr_sudden_drop"] = float(np.argmax(drop < -cfg.sudden_change_bpm))
    rise[: cfg.sudden_rise_skip] = 0.0
    if (rise > cfg.sudden_change_bpm).any():  # HR08
        flags["hr_sudden_rise"] = float(np.argmax(rise > cfg.sudden_change_bpm))

    fast = int((speed_raw > cfg.speed_high_kmh).sum())
    if fast > cfg.speed_high_count:  # SP01
        flags["speed_too_high"] = float(fast)
    if (speed_raw < 0).any():  # SP02 (native only; repaired before use)
        flags["speed_negative"] = float((speed_raw < 0).sum())
    zero_moving = int(((speed < cfg.zero_moving_speed_kmh) & (hr > cfg.zero_moving_hr_bpm)).sum())
    if zero_moving > cfg.zero_moving_count:  # SP03
        flags["speed_zero_moving"] = float(zero_moving)
    dsp = np.abs(diff(speed_raw))
    if (dsp > cfg.speed_step_kmh).any():  # SP04
        flags["speed_spike"] = float((dsp > cfg.speed_step_kmh).sum())
    both = (hr > 50) & (speed > 0)
    n_both = int(both.sum())
    mismatch = n_both > cfg.mismatch_min_points and n > cfg.low_std_min_points
    offset_c = n >= cfg.min_points and n_both > 2
    # One correlation serves SP05 and PH01 (c), computed only when either reads it.
    r_both = pearson(speed[both], hr[both]) if mismatch or offset_c else float("nan")
    if mismatch and np.isfinite(r_both) and abs(r_both) < cfg.mismatch_corr:  # SP05
        flags["hr_speed_mismatch"] = r_both

    dts = diff(ts).astype(np.float64)
    if cfg.gap_action == "flag" and (dts > PAUSE_MIN_S).any():  # TS01 (pause: judged apart)
        flags["timestamp_gap"] = float(dts.max())
    if (dts == 0).any():  # TS04
        flags["timestamp_duplicate"] = float((dts == 0).sum())
    dts_std = std(dts) if dts.size else 0.0
    if dts.size and dts_std > cfg.ts_irregular_std_s:  # TS05
        flags["timestamp_irregular"] = dts_std
    dalt = np.abs(diff(alt))
    if (dalt > cfg.altitude_step_m).any():  # AL01
        flags["altitude_spike"] = float(dalt.max())

    if n >= cfg.min_points:  # PH01 (a)-(c)
        mean_speed = float(speed.mean())
        mean_hr = float(hr.mean())
        duration_min = (ts[-1] - ts[0]) / 60.0
        if mean_speed > cfg.offset_a_speed_kmh and mean_hr < cfg.offset_a_hr_bpm:
            flags["offset_suspect_a"] = cfg.offset_a_hr_bpm - mean_hr
        if (
            hr.max() < cfg.offset_b_max_hr_bpm
            and duration_min > cfg.offset_b_duration_min
            and mean_speed > cfg.offset_b_speed_kmh
        ):
            flags["offset_suspect_b"] = float(hr.max())
        if (
            offset_c
            and np.isfinite(r_both)
            and r_both > cfg.offset_c_corr
            and mean_hr < cfg.offset_c_hr_bpm
        ):
            flags["offset_suspect_c"] = r_both
    return flags
