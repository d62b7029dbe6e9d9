"""hrpred.timeseries: distance, windows and the speed rules, against independent numpy code."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from hrpred.timeseries import (
    EARTH_RADIUS_KM,
    SpeedConfig,
    derived_speed_kmh,
    haversine_km,
    moving_average,
    rolling_median,
    speed_from_recording,
    spike_mask,
    step_distances_km,
    trailing_mean,
)


@pytest.fixture
def cfg(config) -> SpeedConfig:
    """The committed params.yaml clean.speed."""
    return config(SpeedConfig, "clean.speed")


def gps_speed_kmh(ts, lat, lon, cfg):
    return derived_speed_kmh(ts, step_distances_km(lat, lon), cfg)


def chord_distance_km(lat1, lon1, lat2, lon2):
    """Independent great-circle distance: 3-D unit vectors, chord -> arc."""

    def unit(lat, lon):
        la, lo = np.radians(lat), np.radians(lon)
        return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], -1)

    chord = np.linalg.norm(unit(lat1, lon1) - unit(lat2, lon2), axis=-1)
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))


def test_haversine_matches_chord_formula():
    rng = np.random.default_rng(0)
    lat1, lat2 = rng.uniform(-89, 89, (2, 500))
    lon1, lon2 = rng.uniform(-180, 180, (2, 500))
    np.testing.assert_allclose(
        haversine_km(lat1, lon1, lat2, lon2), chord_distance_km(lat1, lon1, lat2, lon2), atol=1e-6
    )
    # Short steps (metres), the case that matters for speed.
    lat = 48.0 + np.cumsum(rng.normal(0, 2e-5, 200))
    lon = 11.0 + np.cumsum(rng.normal(0, 2e-5, 200))
    np.testing.assert_allclose(
        step_distances_km(lat, lon),
        chord_distance_km(lat[:-1], lon[:-1], lat[1:], lon[1:]),
        rtol=1e-6,
        atol=1e-9,
    )


def test_one_degree_of_latitude():
    assert haversine_km(np.array([0.0]), np.array([0.0]), np.array([1.0]), np.array([0.0]))[
        0
    ] == pytest.approx(np.pi * EARTH_RADIUS_KM / 180.0)


def straight_track(speed_kmh: np.ndarray, dt: np.ndarray, lat0: float = 45.0):
    """A northward track with the given per-step speeds (step i ends at point i)."""
    step_km = speed_kmh * dt / 3600.0
    lat = lat0 + np.degrees(np.cumsum(step_km) / EARTH_RADIUS_KM)
    lon = np.full(lat.size, 7.0)
    ts = np.cumsum(dt).astype(np.int64) + 1_400_000_000
    return ts, lat, lon


def test_gps_speed_recovers_constant_speed_and_repairs_a_spike(cfg):
    rng = np.random.default_rng(1)
    n = 300
    dt = rng.integers(5, 12, n).astype(float)
    dt[0] = 0.0
    ts, lat, lon = straight_track(np.full(n, 12.0), dt)
    speed, bad, raw_max, raw = gps_speed_kmh(ts, lat, lon, cfg)
    np.testing.assert_allclose(speed[1:], 12.0, rtol=1e-6)
    assert not bad.any()
    # Independent raw speed: chord distance over dt.
    d = chord_distance_km(lat[:-1], lon[:-1], lat[1:], lon[1:])
    np.testing.assert_allclose(raw[1:], d / np.diff(ts) * 3600.0, rtol=1e-6)
    # One position 800 m off track: both adjacent steps are spikes, then repaired.
    lat2 = lat.copy()
    lat2[150] += np.degrees(0.8 / EARTH_RADIUS_KM)
    speed2, bad2, raw_max2, _ = gps_speed_kmh(ts, lat2, lon, cfg)
    assert set(np.flatnonzero(bad2)) == {150, 151}
    assert raw_max2 > 100.0
    np.testing.assert_allclose(speed2, speed, rtol=1e-6)


def test_duplicate_timestamps_are_filled_not_infinite(cfg):
    n = 100
    dt = np.full(n, 10.0)
    dt[0] = 0.0
    ts, lat, lon = straight_track(np.full(n, 10.0), dt)
    ts[50] = ts[49]  # duplicate time: no speed for that step
    speed, bad, _, _ = gps_speed_kmh(ts, lat, lon, cfg)
    assert np.isfinite(speed).all() and bad[50]


def test_moving_average_against_pandas():
    x = np.random.default_rng(2).normal(size=57)
    for w in (2, 3, 6):
        causal = pd.Series(x).rolling(w, min_periods=1).mean().to_numpy()
        np.testing.assert_allclose(moving_average(x, w, causal=True), causal)
        np.testing.assert_allclose(trailing_mean(x, w), causal)
    centred = pd.Series(x).rolling(7, min_periods=1, center=True).mean().to_numpy()
    np.testing.assert_allclose(moving_average(x, 7, causal=False), centred)
    np.testing.assert_array_equal(moving_average(x, 0, causal=True), x)
    np.testing.assert_array_equal(trailing_mean(x, 1), x)


def test_rolling_median_against_pandas():
    x = np.random.default_rng(3).normal(size=40)
    padded = np.pad(x, 3, mode="edge")
    expected = pd.Series(padded).rolling(7, center=True).median().to_numpy()[3:-3]
    np.testing.assert_allclose(rolling_median(x, 7), expected)


def test_rolling_median_equal_to_padded_sliding_windows():
    """Strided views of the edge-padded copy: bit for bit the np.pad + sliding_window_view
    median it replaced, on any length (shorter than the window too), window (even: made
    odd), dtype and NaNs."""
    rng = np.random.default_rng(27)
    for _ in range(400):
        n = int(rng.integers(1, 60))
        window = int(rng.integers(2, 16))
        x = rng.normal(10.0, 5.0, n)
        kind = int(rng.integers(0, 4))
        if kind == 1:
            x = np.round(x).astype(np.int64)
        elif kind == 2:
            x = x.astype(np.float32)
        elif kind == 3:
            x[rng.random(n) < 0.2] = np.nan
        half = window // 2
        padded = np.pad(np.asarray(x, dtype=np.float64), half, mode="edge")
        windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
        want = np.sort(windows, axis=1)[:, half]
        got = rolling_median(x, window)
        assert got.dtype == np.float64 and got.flags.writeable
        assert got.tobytes() == want.tobytes()
        assert got.shape == x.shape
    empty = rolling_median(np.array([]), 5)
    assert empty.size == 0 and empty.dtype == np.float64


def test_spike_mask_keeps_real_pace_changes(cfg):
    cfg = dataclasses.replace(cfg, max_kmh=30.0, spike_window=7, spike_factor=2.0)
    cfg = dataclasses.replace(cfg, spike_margin_kmh=5.0)
    speed = np.r_[np.full(20, 0.0), np.full(20, 14.0), np.full(20, 8.0)]
    assert not spike_mask(speed, cfg).any()
    speed[30] = 29.0  # isolated: > 2 * 14 + 5? no -> 29 < 33
    assert not spike_mask(speed, cfg).any()
    speed[30] = 40.0
    assert set(np.flatnonzero(spike_mask(speed, cfg))) == {30}


def test_speed_sources(cfg):
    n = 120
    dt = np.full(n, 8.0)
    dt[0] = 0.0
    ts, lat, lon = straight_track(np.full(n, 11.0), dt)
    native = np.full(n, 10.5)
    r = speed_from_recording(ts, native, lat, lon, cfg)
    assert r.source == "native" and np.allclose(r.speed, 10.5)
    # Implausible native speed (mostly negative): GPS instead.
    r = speed_from_recording(ts, -native, lat, lon, cfg)
    assert r.source == "gps" and np.allclose(r.speed[3:], 11.0, rtol=1e-6)
    # Native with two spikes: kept, spikes interpolated.
    spiky = native.copy()
    spiky[[40, 80]] = 120.0
    r = speed_from_recording(ts, spiky, None, None, cfg)
    assert r.source == "native" and r.n_spikes == 2 and np.allclose(r.speed, 10.5)
    # Nothing usable.
    assert speed_from_recording(ts, None, None, None, cfg).reason == "no_gps"
    stuck = speed_from_recording(ts, None, np.full(n, 45.0), np.full(n, 7.0), cfg)
    assert stuck.speed is None and stuck.reason == "gps_stuck"
    # Distance channel (user files): after native, before GPS; a counter reset is a spike.
    dist_m = np.cumsum(np.r_[0.0, np.full(n - 1, 12.0 / 3.6 * 8.0)])
    r = speed_from_recording(ts, None, lat, lon, cfg, dist_m)
    assert r.source == "distance" and np.allclose(r.speed[3:], 12.0)
    reset = dist_m.copy()
    reset[60:] -= reset[60]
    r = speed_from_recording(ts, None, lat, lon, cfg, reset)
    assert r.source == "distance" and r.n_spikes == 1 and np.allclose(r.speed[3:], 12.0)
    off = dataclasses.replace(cfg, use_distance=False)
    assert speed_from_recording(ts, None, lat, lon, off, dist_m).source == "gps"
    # A native channel that never moves gives way to GPS; with no other source it is kept.
    r = speed_from_recording(ts, np.zeros(n), lat, lon, cfg)
    assert r.source == "gps" and r.still == ["native"]
    r = speed_from_recording(ts, np.zeros(n), None, None, cfg)
    assert r.source == "native" and r.speed.max() == 0.0


def test_derived_speed_is_smoothed_causally(cfg):
    """Smoothing of GPS speed never reads the future: a pace change shows only after it."""
    n = 60
    speed = np.r_[np.full(30, 9.0), np.full(30, 15.0)]
    dt = np.full(n, 8.0)
    dt[0] = 0.0
    ts, lat, lon = straight_track(speed, dt)
    r = speed_from_recording(ts, None, lat, lon, cfg)
    np.testing.assert_allclose(r.speed[:30], 9.0, rtol=1e-6)
    w = cfg.smooth_window
    np.testing.assert_allclose(r.speed[30], (9.0 * (w - 1) + 15.0) / w, rtol=1e-6)


def test_bad_settings_are_param_errors(cfg):
    from hrpred.params import ParamError

    with pytest.raises(ParamError, match="max_spike_fraction"):
        dataclasses.replace(cfg, max_spike_fraction=1.5)
    with pytest.raises(ParamError, match="max_kmh"):
        dataclasses.replace(cfg, max_kmh=0.0)
