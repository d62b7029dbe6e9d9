"""Speed for every workout: native when plausible, else derived from GPS positions.

All functions are vectorised over one workout's arrays (no per-point Python loops).
Speeds are km/h, times are seconds, distances km.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EARTH_RADIUS_KM = 6371.0


def haversine_km(
    lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
) -> np.ndarray:
    """Great-circle distance (km) between points given in degrees."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dlat = p2 - p1
    dlon = np.radians(lon2) - np.radians(lon1)
    a = np.sin(dlat / 2.0) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlon / 2.0) ** 2
    # Rounding can push `a` a hair outside [0, 1]; arcsin would return NaN.
    a = np.clip(a, 0.0, 1.0)
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a))


def step_distances_km(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Distance between consecutive points (length n-1)."""
    return haversine_km(lat[:-1], lon[:-1], lat[1:], lon[1:])


def rolling_median(x: np.ndarray, window: int) -> np.ndarray:
    """Centred rolling median with edge padding (same length as x); window made odd.

    Sorting the small windows is about twice as fast as np.median on them.
    """
    n = x.size
    if n == 0 or window <= 1:
        return x.astype(np.float64, copy=True)
    half = window // 2
    padded = np.pad(np.asarray(x, dtype=np.float64), half, mode="edge")
    windows = np.sort(np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1), axis=1)
    return windows[:, half]


def moving_average(x: np.ndarray, window: int, causal: bool = True) -> np.ndarray:
    """Moving mean over `window` samples; 0 or 1 returns a copy.

    Causal: mean of x[i-window+1 .. i] (shorter window at the start), so step i
    never sees the future. Centred: mean of x[i-h .. i+h] with h = window // 2,
    truncated at the edges.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    if window <= 1 or n == 0:
        return x.copy()
    csum = np.concatenate(([0.0], np.cumsum(x)))
    idx = np.arange(n)
    if causal:
        lo = np.maximum(idx - window + 1, 0)
        hi = idx + 1
    else:
        half = window // 2
        lo = np.maximum(idx - half, 0)
        hi = np.minimum(idx + half + 1, n)
    return (csum[hi] - csum[lo]) / (hi - lo)


def trailing_time_mean(x: np.ndarray, t: np.ndarray, window_s: float) -> np.ndarray:
    """Mean of x over the trailing time window (t_i - window_s, t_i], t non-decreasing."""
    n = x.size
    if n == 0:
        return x.astype(np.float64, copy=True)
    csum = np.concatenate(([0.0], np.cumsum(x, dtype=np.float64)))
    lo = np.searchsorted(t, t - window_s, side="right")
    hi = np.arange(1, n + 1)
    return (csum[hi] - csum[lo]) / (hi - lo)


def interpolate_gaps(values: np.ndarray, bad: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Replace values where `bad` by linear interpolation in t (edges held constant)."""
    out = values.astype(np.float64, copy=True)
    good = ~bad
    if bad.any() and good.any():
        out[bad] = np.interp(t[bad], t[good], values[good])
    return out


def spike_mask(
    speed: np.ndarray, max_kmh: float, window: int, factor: float, margin_kmh: float
) -> np.ndarray:
    """Samples that are GPS spikes: above the hard cap, or far above the local median.

    A lost fix or a time jump gives one or two huge values; the rolling median of the
    neighbours is unaffected, so `speed > factor * median + margin` isolates them.
    """
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(speed) | (speed > max_kmh) | (speed < 0)
    if window > 1 and speed.size and not bad.all():
        filled = np.where(bad, np.median(speed[~bad]), speed)
        med = rolling_median(filled, window)
        with np.errstate(invalid="ignore"):
            bad |= speed > factor * med + margin_kmh
    return bad


@dataclass(frozen=True)
class SpeedConfig:
    """Speed derivation knobs (see params.yaml clean.speed)."""

    max_kmh: float = 30.0  # hard cap: faster samples are spikes (km/h)
    spike_window: int = 7  # rolling-median window for spike detection (samples)
    spike_factor: float = 2.0  # spike if speed > factor * local median + margin
    spike_margin_kmh: float = 5.0  # (km/h)
    max_spike_fraction: float = 0.10  # more spikes than this: speed source unusable
    smooth_window: int = 3  # smoothing of derived speed (samples, 0/1 = off)
    smooth_causal: bool = True  # trailing window (no future samples)
    min_gps_std_deg: float = 1.0e-4  # lat and lon std below this: GPS stuck (deg)
    native_min_valid_fraction: float = 0.9  # native speed usable if this many samples plausible


@dataclass
class SpeedResult:
    """Speed chosen for one workout."""

    speed: np.ndarray | None  # km/h, length n, or None when no usable source
    source: str  # native | gps | none
    n_spikes: int  # samples repaired
    raw_max: float  # max before repair (km/h)
    reason: str  # why no source, or "" when usable
    raw: np.ndarray | None = None  # speed before spike repair (for the rule checks)


def gps_speed_kmh(
    ts: np.ndarray, lat: np.ndarray, lon: np.ndarray, cfg: SpeedConfig
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """Speed from positions: haversine over time, spikes re-derived by interpolation.

    Returns (speed of length n, spike mask of length n, raw max, raw speed). The first sample
    copies the first step's speed so the length stays n. Steps with zero or negative
    dt have no speed and are filled like spikes.
    """
    n = ts.size
    if n < 2:
        return np.zeros(n), np.ones(n, dtype=bool), 0.0, np.zeros(n)
    dist = step_distances_km(lat, lon)
    dt = np.diff(ts).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = np.where(dt > 0, dist / np.where(dt > 0, dt, 1.0) * 3600.0, np.nan)
    raw = np.concatenate((raw[:1], raw))
    finite = raw[np.isfinite(raw)]
    raw_max = float(finite.max()) if finite.size else float("nan")
    bad = spike_mask(raw, cfg.max_kmh, cfg.spike_window, cfg.spike_factor, cfg.spike_margin_kmh)
    t = ts.astype(np.float64)
    speed = interpolate_gaps(np.where(bad, 0.0, raw), bad, t)
    return speed, bad, raw_max, raw


def native_speed_kmh(
    speed: np.ndarray, ts: np.ndarray, cfg: SpeedConfig
) -> tuple[np.ndarray, np.ndarray, float]:
    """Native speed with spikes (and negative / non-finite values) interpolated over."""
    finite = speed[np.isfinite(speed)]
    raw_max = float(finite.max()) if finite.size else float("nan")
    bad = spike_mask(speed, cfg.max_kmh, cfg.spike_window, cfg.spike_factor, cfg.spike_margin_kmh)
    fixed = interpolate_gaps(np.where(bad, 0.0, speed), bad, ts.astype(np.float64))
    return fixed, bad, raw_max


def gps_usable(lat: np.ndarray | None, lon: np.ndarray | None, n: int, min_std: float) -> str:
    """'' when positions can give speed, else the reason they cannot."""
    if lat is None or lon is None or lat.size == 0 or lon.size == 0:
        return "no_gps"
    if lat.size != n or lon.size != n:
        return "gps_length"
    if not (np.isfinite(lat).all() and np.isfinite(lon).all()):
        return "gps_nonfinite"
    if np.abs(lat).max() > 90.0 or np.abs(lon).max() > 180.0:
        return "gps_range"
    if lat.std() < min_std and lon.std() < min_std:
        return "gps_stuck"
    return ""


def choose_speed(
    ts: np.ndarray,
    native: np.ndarray | None,
    lat: np.ndarray | None,
    lon: np.ndarray | None,
    cfg: SpeedConfig,
) -> SpeedResult:
    """Native speed when present and plausible; else GPS-derived; else none with a reason.

    Native speed is plausible when it has the workout's length and at least
    `native_min_valid_fraction` of its samples are finite and within [0, max_kmh];
    its isolated spikes are interpolated. GPS speed is smoothed (native is not: it is
    already the device's estimate).
    """
    n = ts.size
    if native is not None and native.size == n and n > 0:
        ok = np.isfinite(native) & (native >= 0) & (native <= cfg.max_kmh)
        if ok.mean() >= cfg.native_min_valid_fraction:
            fixed, bad, raw_max = native_speed_kmh(native, ts, cfg)
            if bad.mean() <= cfg.max_spike_fraction:
                return SpeedResult(fixed, "native", int(bad.sum()), raw_max, "", native)
    reason = gps_usable(lat, lon, n, cfg.min_gps_std_deg)
    if reason:
        return SpeedResult(None, "none", 0, float("nan"), reason)
    assert lat is not None and lon is not None
    speed, bad, raw_max, raw = gps_speed_kmh(ts, lat, lon, cfg)
    if bad.mean() > cfg.max_spike_fraction:
        return SpeedResult(None, "none", int(bad.sum()), raw_max, "gps_spikes")
    if cfg.smooth_window > 1:
        speed = moving_average(speed, cfg.smooth_window, cfg.smooth_causal)
    speed = np.clip(speed, 0.0, cfg.max_kmh)
    return SpeedResult(speed, "gps", int(bad.sum()), raw_max, "", raw)
