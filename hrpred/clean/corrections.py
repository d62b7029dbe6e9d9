"""Corrections after detection: mask or interpolate bad HR samples, plausibility of
offset corrections, optional input smoothing, and the reference's HR filters (off)."""

from __future__ import annotations

import numpy as np

from hrpred.clean.config import CorrectionConfig, HrFilterConfig, SmoothConfig
from hrpred.clean.hr_types import hr_workout_type
from hrpred.clean.rules import pearson
from hrpred.clean.signal import runs_of
from hrpred.timeseries import moving_average


def fill_short_gaps(
    hr: np.ndarray, invalid: np.ndarray, ts: np.ndarray, max_gap_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate (linearly in time) the invalid runs spanning at most max_gap_s between
    their valid neighbours; longer runs and runs at the edges stay invalid.

    Returns (hr, still_invalid).
    """
    out = hr.astype(np.float64, copy=True)
    still = invalid.copy()
    n = hr.size
    starts, ends = runs_of(invalid)
    if starts.size == 0 or invalid.all():
        return out, still
    inner = (starts > 0) & (ends < n)
    span = np.zeros(starts.size)
    span[inner] = ts[ends[inner]] - ts[starts[inner] - 1]
    fill = inner & (span <= max_gap_s)
    if not fill.any():
        return out, still
    cover = np.zeros(n + 1, dtype=np.int64)
    np.add.at(cover, starts[fill], 1)
    np.add.at(cover, ends[fill], -1)
    target = np.cumsum(cover[:-1]) > 0
    good = ~invalid
    t = ts.astype(np.float64)
    out[target] = np.interp(t[target], t[good], hr[good])
    still[target] = False
    return out, still


def offset_plausible(hr: np.ndarray, valid: np.ndarray, cfg: CorrectionConfig) -> bool:
    """The reference's stage-3 check: the corrected workout's mean HR stays plausible."""
    if not valid.any():
        return False
    mean = float(hr[valid].mean())
    return cfg.plausible_mean_min_bpm <= mean <= cfg.plausible_mean_max_bpm


def smooth_inputs(
    speed: np.ndarray, alt: np.ndarray, hr: np.ndarray, cfg: SmoothConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Moving-average smoothing of the chosen fields (window 0/1 = unchanged)."""
    if cfg.window <= 1:
        return speed, alt, hr
    if "speed" in cfg.fields:
        speed = moving_average(speed, cfg.window, cfg.causal)
    if "altitude" in cfg.fields:
        alt = moving_average(alt, cfg.window, cfg.causal)
    if cfg.target:
        hr = moving_average(hr, cfg.window, cfg.causal)
    return speed, alt, hr


def hr_filter_reason(
    hr: np.ndarray, speed: np.ndarray, valid: np.ndarray, cfg: HrFilterConfig
) -> str | None:
    """The reference's target-conditioned drops (only when cfg.enabled): a reason or None."""
    if not cfg.enabled:
        return None
    h, v = hr[valid], speed[valid]
    if h.size == 0:
        return "hr_filter:empty"
    if h.mean() < cfg.mean_min_bpm:
        return "hr_filter:mean_low"
    if h.max() > cfg.max_max_bpm:
        return "hr_filter:max_high"
    if h.std() < cfg.std_min_bpm:
        return "hr_filter:std_low"
    r = pearson(h, v) if h.size > 10 else 0.0
    if np.isfinite(r) and r < cfg.corr_min:
        return "hr_filter:corr_low"
    if cfg.drop_types and hr_workout_type(h).upper() in cfg.drop_types:
        return "hr_filter:type"
    return None
