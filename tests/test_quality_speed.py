"""Speed from GPS and native speed: checked against independent numpy computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hrpred.clean.speed import (
    EARTH_RADIUS_KM,
    SpeedConfig,
    choose_speed,
    gps_speed_kmh,
    haversine_km,
    moving_average,
    rolling_median,
    spike_mask,
    step_distances_km,
    trailing_time_mean,
)


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


def test_gps_speed_recovers_constant_speed_and_repairs_a_spike():
    rng = np.random.default_rng(1)
    n = 300
    dt = rng.integers(5, 12, n).astype(float)
    dt[0] = 0.0
    ts, lat, lon = straight_track(np.full(n, 12.0), dt)
    cfg = SpeedConfig()
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


def test_duplicate_timestamps_are_filled_not_infinite():
    n = 100
    dt = np.full(n, 10.0)
    dt[0] = 0.0
    ts, lat, lon = straight_track(np.full(n, 10.0), dt)
    ts[50] = ts[49]  # duplicate time: no speed for that step
    speed, bad, _, _ = gps_speed_kmh(ts, lat, lon, SpeedConfig())
    assert np.isfinite(speed).all() and bad[50]


def test_moving_average_against_pandas():
    x = np.random.default_rng(2).normal(size=57)
    for w in (2, 3, 6):
        causal = pd.Series(x).rolling(w, min_periods=1).mean().to_numpy()
        np.testing.assert_allclose(moving_average(x, w, causal=True), causal)
    centred = pd.Series(x).rolling(7, min_periods=1, center=True).mean().to_numpy()
    np.testing.assert_allclose(moving_average(x, 7, causal=False), centred)
    np.testing.assert_array_equal(moving_average(x, 0), x)


def test_rolling_median_against_pandas():
    x = np.random.default_rng(3).normal(size=40)
    padded = np.pad(x, 3, mode="edge")
    expected = pd.Series(padded).rolling(7, center=True).median().to_numpy()[3:-3]
    np.testing.assert_allclose(rolling_median(x, 7), expected)


def test_trailing_time_mean_against_loop():
    rng = np.random.default_rng(4)
    t = np.cumsum(rng.integers(1, 20, 80)).astype(float)
    x = rng.normal(size=80)
    got = trailing_time_mean(x, t, 45.0)
    want = [x[(t > ti - 45.0) & (t <= ti)].mean() for ti in t]
    np.testing.assert_allclose(got, want)


def test_spike_mask_keeps_real_pace_changes():
    speed = np.r_[np.full(20, 0.0), np.full(20, 14.0), np.full(20, 8.0)]
    assert not spike_mask(speed, 30.0, 7, 2.0, 5.0).any()
    speed[30] = 29.0  # isolated: > 2 * 14 + 5? no -> 29 < 33
    assert not spike_mask(speed, 30.0, 7, 2.0, 5.0).any()
    speed[30] = 40.0
    assert set(np.flatnonzero(spike_mask(speed, 30.0, 7, 2.0, 5.0))) == {30}


def test_choose_speed_sources():
    n = 120
    dt = np.full(n, 8.0)
    dt[0] = 0.0
    ts, lat, lon = straight_track(np.full(n, 11.0), dt)
    cfg = SpeedConfig()
    native = np.full(n, 10.5)
    r = choose_speed(ts, native, lat, lon, cfg)
    assert r.source == "native" and np.allclose(r.speed, 10.5)
    # Implausible native speed (mostly negative): GPS instead.
    r = choose_speed(ts, -native, lat, lon, cfg)
    assert r.source == "gps" and np.allclose(r.speed[3:], 11.0, rtol=1e-6)
    # Native with two spikes: kept, spikes interpolated.
    spiky = native.copy()
    spiky[[40, 80]] = 120.0
    r = choose_speed(ts, spiky, None, None, cfg)
    assert r.source == "native" and r.n_spikes == 2 and np.allclose(r.speed, 10.5)
    # Nothing usable.
    assert choose_speed(ts, None, None, None, cfg).reason == "no_gps"
    stuck = choose_speed(ts, None, np.full(n, 45.0), np.full(n, 7.0), cfg)
    assert stuck.speed is None and stuck.reason == "gps_stuck"
