"""One implementation of the time-series primitives that training and serving share.

- `haversine_km`: great-circle distance (the only one in hrpred/; clean, predict and the
  app all derive GPS distance with it).
- `trailing_mean`: causal moving mean over the last <= w samples (pandas
  `rolling(w, min_periods=1)`); the featurize stage's `rolling_*` features, clean's optional
  input smoothing and the smoothing of derived speed all use it.
- `speed_from_recording`: the speed of one recording, with the rules of params/clean.yaml
  `speed` (config key clean.speed, `SpeedConfig`). The clean stage applies it to every workout; the bundle
  carries the same settings (config.json `speed`) and `hrpred predict` applies it to the
  user's file on the training grid, so training and serving derive speed with the same rules.

Speed rules (all speeds km/h, times s, distances km), sources in order of preference:
1. native: the recording's speed channel, used when it has the recording's length and at
   least `native_min_valid_fraction` of its samples are finite and within [0, max_kmh]. Its
   spikes (see 4) are interpolated over; it is not smoothed (it is the device's estimate).
2. distance (when `use_distance`): a cumulative distance channel (user files; FitRec has
   none), differenced over time.
3. gps: haversine distance between consecutive positions over time; unusable when positions
   are missing, non-finite, out of range or stuck (lat AND lon std < `min_gps_std_deg`).
4. Spikes, for every source: non-finite, negative (a distance counter reset), above
   `max_kmh`, or above `spike_factor` x the centred `spike_window`-sample rolling median +
   `spike_margin_kmh`. Spikes are replaced by linear interpolation in time. A source with more
   than `max_spike_fraction` spikes is unusable.
5. Derived speeds (distance, gps) are smoothed by a `smooth_window`-sample moving mean
   (trailing when `smooth_causal`) and clipped to [0, max_kmh]. The first sample copies the
   first step's speed.
6. A usable source whose maximum stays below `min_moving_kmh` never moves (a speed field left
   at 0 without a foot pod): the next source that moves is used; if none moves, the first
   usable one (the caller then rejects the workout / reports "no movement").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hrpred.params import ParamError

EARTH_RADIUS_KM = 6371.0


# --------------------------------------------------------------------------- distance


def haversine_km(
    lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
) -> np.ndarray:
    """Great-circle distance (km) between points given in degrees (broadcasts)."""
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


# --------------------------------------------------------------------------- windows


def trailing_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Mean of x[i-window+1 .. i] (fewer samples at the start); window 0 or 1: a copy.

    Causal: step i never sees the future. Equals pandas `rolling(window, min_periods=1).mean()`.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    if window <= 1 or n == 0:
        return x.copy()
    csum = np.concatenate(([0.0], np.cumsum(x)))
    hi = np.arange(1, n + 1)
    lo = np.maximum(hi - window, 0)
    return (csum[hi] - csum[lo]) / (hi - lo)


def moving_average(x: np.ndarray, window: int, causal: bool) -> np.ndarray:
    """`trailing_mean` when causal, else the centred mean of x[i-h .. i+h] (h = window // 2,
    truncated at the edges); window 0 or 1 returns a copy."""
    if causal:
        return trailing_mean(x, window)
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    if window <= 1 or n == 0:
        return x.copy()
    csum = np.concatenate(([0.0], np.cumsum(x)))
    idx = np.arange(n)
    half = window // 2
    lo = np.maximum(idx - half, 0)
    hi = np.minimum(idx + half + 1, n)
    return (csum[hi] - csum[lo]) / (hi - lo)


def rolling_median(x: np.ndarray, window: int) -> np.ndarray:
    """Centred rolling median with edge padding (same length as x); window made odd.

    Sorting the small windows is about twice as fast as np.median on them; the windows are
    read-only strided views of the edge-padded copy (np.pad and sliding_window_view cost
    more than the sort on a workout's few hundred samples).
    """
    n = x.size
    if n == 0 or window <= 1:
        return x.astype(np.float64, copy=True)
    half = window // 2
    x = np.asarray(x, dtype=np.float64)
    padded = np.concatenate((np.full(half, x[0]), x, np.full(half, x[-1])))
    step = padded.strides[0]
    windows = np.lib.stride_tricks.as_strided(
        padded, (n, 2 * half + 1), (step, step), writeable=False
    )
    return np.sort(windows, axis=1)[:, half]


def interpolate_gaps(values: np.ndarray, bad: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Replace values where `bad` by linear interpolation in t (edges held constant)."""
    out = values.astype(np.float64, copy=True)
    good = ~bad
    if bad.any() and good.any():
        out[bad] = np.interp(t[bad], t[good], values[good])
    return out


# --------------------------------------------------------------------------- speed


@dataclass(frozen=True)
class SpeedConfig:
    """Speed rules (params/clean.yaml `speed`; copied into the bundle's config.json)."""

    max_kmh: float  # hard cap: faster samples are spikes (km/h)
    spike_window: int  # rolling-median window for spike detection (samples)
    spike_factor: float  # spike if speed > factor * local median + margin
    spike_margin_kmh: float  # (km/h)
    max_spike_fraction: float  # more spikes than this: the source is unusable (fraction)
    smooth_window: int  # moving mean of derived speed (samples; 0/1 = off)
    smooth_causal: bool  # trailing window (no future samples)
    min_gps_std_deg: float  # lat and lon std below this: GPS stuck (deg)
    native_min_valid_fraction: float  # native speed usable if this share is in [0, max_kmh]
    use_distance: bool  # a cumulative distance channel is a source (before GPS)
    min_moving_kmh: float  # a source whose maximum stays below this never moves (km/h)

    def __post_init__(self) -> None:
        for name in ("max_kmh", "spike_factor", "min_moving_kmh"):
            if not getattr(self, name) > 0:
                raise ParamError(f"clean.speed.{name} must be > 0, got {getattr(self, name)}")
        for name in ("max_spike_fraction", "native_min_valid_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ParamError(f"clean.speed.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.spike_window < 0 or self.smooth_window < 0:
            raise ParamError("clean.speed.spike_window and smooth_window must be >= 0")


@dataclass
class SpeedResult:
    """Speed chosen for one recording."""

    speed: np.ndarray | None  # km/h, length n, or None when no usable source
    source: str  # native | distance | gps | none
    n_spikes: int  # samples repaired
    raw_max: float  # max before repair (km/h)
    reason: str  # why no source, or "" when usable
    raw: np.ndarray | None = None  # speed before spike repair (for the rule checks)
    still: list[str] = field(default_factory=list)  # usable sources skipped: never moving


def spike_mask(speed: np.ndarray, cfg: SpeedConfig) -> np.ndarray:
    """Samples that are spikes: non-finite, negative, above the cap, or far above the local
    median (a lost fix or a time jump gives one or two huge values; the rolling median of the
    neighbours is unaffected, so `speed > factor * median + margin` isolates them)."""
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(speed) | (speed > cfg.max_kmh) | (speed < 0)
    if cfg.spike_window > 1 and speed.size and not bad.all():
        filled = np.where(bad, np.median(speed[~bad]), speed)
        med = rolling_median(filled, cfg.spike_window)
        with np.errstate(invalid="ignore"):
            bad |= speed > cfg.spike_factor * med + cfg.spike_margin_kmh
    return bad


def _raw_max(speed: np.ndarray) -> float:
    finite = speed[np.isfinite(speed)]
    return float(finite.max()) if finite.size else float("nan")


def derived_speed_kmh(
    ts: np.ndarray, step_km: np.ndarray, cfg: SpeedConfig
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """Speed from per-step distances (length n-1): distance over time, spikes interpolated.

    Returns (speed, spike mask, raw max, raw speed), all of length n; the first sample copies
    the first step's speed. Steps with zero or negative dt have no speed: filled like spikes.
    Not yet smoothed.
    """
    n = ts.size
    if n < 2:
        return np.zeros(n), np.ones(n, dtype=bool), 0.0, np.zeros(n)
    dt = np.diff(ts).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = np.where(dt > 0, step_km / np.where(dt > 0, dt, 1.0) * 3600.0, np.nan)
    raw = np.concatenate((raw[:1], raw))
    bad = spike_mask(raw, cfg)
    speed = interpolate_gaps(np.where(bad, 0.0, raw), bad, ts.astype(np.float64))
    return speed, bad, _raw_max(raw), raw


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


def _native(ts: np.ndarray, native: np.ndarray | None, cfg: SpeedConfig) -> SpeedResult | None:
    n = ts.size
    if native is None or native.size != n or n == 0:
        return None
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(native) & (native >= 0) & (native <= cfg.max_kmh)
    if ok.mean() < cfg.native_min_valid_fraction:
        return None
    bad = spike_mask(native, cfg)
    if bad.mean() > cfg.max_spike_fraction:
        return None
    fixed = interpolate_gaps(np.where(bad, 0.0, native), bad, ts.astype(np.float64))
    return SpeedResult(fixed, "native", int(bad.sum()), _raw_max(native), "", native)


def _derived(ts: np.ndarray, step_km: np.ndarray, source: str, cfg: SpeedConfig) -> SpeedResult:
    speed, bad, raw_max, raw = derived_speed_kmh(ts, step_km, cfg)
    if bad.mean() > cfg.max_spike_fraction:
        return SpeedResult(None, "none", int(bad.sum()), raw_max, f"{source}_spikes")
    if cfg.smooth_window > 1:
        speed = moving_average(speed, cfg.smooth_window, cfg.smooth_causal)
    speed = np.clip(speed, 0.0, cfg.max_kmh)
    return SpeedResult(speed, source, int(bad.sum()), raw_max, "", raw)


def speed_from_recording(
    ts: np.ndarray,
    native: np.ndarray | None,
    lat: np.ndarray | None,
    lon: np.ndarray | None,
    cfg: SpeedConfig,
    distance_m: np.ndarray | None = None,
) -> SpeedResult:
    """Speed of one recording by the rules in the module doc (native, distance, gps).

    Returns the first usable source that moves; else the first usable one; else a result
    with speed None whose `reason` says why the last source tried (GPS) is unusable.
    """
    n = ts.size
    first: SpeedResult | None = None
    still: list[str] = []

    def moves(r: SpeedResult) -> bool:
        return r.speed is not None and r.speed.size > 0 and r.speed.max() >= cfg.min_moving_kmh

    def take(r: SpeedResult) -> bool:
        nonlocal first
        if moves(r):
            r.still = still
            return True
        first = first or r
        still.append(r.source)
        return False

    r = _native(ts, native, cfg)
    if r is not None and take(r):
        return r
    if cfg.use_distance and distance_m is not None and distance_m.size == n and n > 1:
        if np.isfinite(distance_m).all():
            r = _derived(ts, np.diff(distance_m) / 1000.0, "distance", cfg)
            if r.speed is not None and take(r):
                return r
    reason = gps_usable(lat, lon, n, cfg.min_gps_std_deg)
    if reason:
        last = SpeedResult(None, "none", 0, float("nan"), reason)
    else:
        assert lat is not None and lon is not None
        last = _derived(ts, step_distances_km(lat, lon), "gps", cfg)
        if last.speed is not None and take(last):
            return last
    if first is not None:
        first.still = still[1:]
        return first
    return last
