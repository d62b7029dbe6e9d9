"""Corrections: interpolation of short gaps, plausibility, smoothing, opt-in HR filters."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from hrpred.clean.config import CleanConfig
from hrpred.clean.corrections import (
    fill_short_gaps,
    hr_filter_reason,
    offset_plausible,
    smooth_inputs,
)
from hrpred.clean.hr_types import hr_workout_type


@pytest.fixture(scope="module")
def clean_cfg(config) -> CleanConfig:
    return config(CleanConfig, "clean")


def test_fill_short_gaps_interpolates_in_time_only_short_inner_runs():
    ts = np.array([0, 10, 20, 25, 40, 50, 60, 200, 210, 220], dtype=np.int64)
    hr = np.array([100, 0, 0, 130, 140, 0, 160, 0, 0, 190], dtype=float)
    bad = hr == 0
    out, still = fill_short_gaps(hr, bad, ts, max_gap_s=60.0)
    # Run [1, 3): neighbours at t=0 (100) and t=25 (130): linear in time.
    np.testing.assert_allclose(out[1:3], np.interp([10, 20], [0, 25], [100, 130]))
    # Run [5]: between t=40 and t=60.
    assert out[5] == np.interp(50, [40, 60], [140, 160])
    # Run [7, 9) spans t=60..220 (160 s > 60 s): stays invalid and unchanged.
    assert still[7] and still[8] and out[7] == 0.0
    assert not still[[1, 2, 5]].any()
    # A run touching the edge is never extrapolated.
    edge = np.array([True, False, False, False, False, False, False, False, False, False])
    out2, still2 = fill_short_gaps(hr, edge, ts, 60.0)
    assert still2[0] and out2[0] == hr[0]


def test_offset_plausibility(clean_cfg):
    cfg = clean_cfg.correct
    assert (cfg.plausible_mean_min_bpm, cfg.plausible_mean_max_bpm) == (100.0, 200.0)
    valid = np.ones(5, dtype=bool)
    assert offset_plausible(np.full(5, 150.0), valid, cfg)
    assert not offset_plausible(np.full(5, 95.0), valid, cfg)
    assert not offset_plausible(np.full(5, 205.0), valid, cfg)
    assert not offset_plausible(np.full(5, 150.0), ~valid, cfg)


def test_smoothing_fields_and_target(clean_cfg):
    rng = np.random.default_rng(0)
    speed, alt, hr = rng.normal(size=(3, 30))
    off = clean_cfg.smooth
    assert off.window == 0 and not off.target
    same = smooth_inputs(speed, alt, hr, off)  # window 0: off
    assert all(a is b for a, b in zip(same, (speed, alt, hr), strict=True))
    s, a, h = smooth_inputs(speed, alt, hr, replace(off, window=3, fields=("altitude",)))
    np.testing.assert_array_equal(s, speed)
    np.testing.assert_array_equal(h, hr)
    want = pd.Series(alt).rolling(3, min_periods=1).mean().to_numpy()
    np.testing.assert_allclose(a, want)
    _, _, h = smooth_inputs(speed, alt, hr, replace(off, window=3, target=True))
    np.testing.assert_allclose(h, pd.Series(hr).rolling(3, min_periods=1).mean().to_numpy())


def test_hr_filters_reference_thresholds(clean_cfg):
    n = 100
    speed = np.linspace(8, 12, n)
    valid = np.ones(n, dtype=bool)
    base = 150 + 6 * np.sin(np.arange(n)) + (speed - 10) * 3  # std about 5.2
    off = clean_cfg.hr_filters
    on = replace(off, enabled=True)
    assert hr_filter_reason(base - 40, speed, valid, off) is None  # off in params.yaml
    assert hr_filter_reason(base, speed, valid, on) is None
    assert hr_filter_reason(base - 40, speed, valid, on) == "hr_filter:mean_low"
    spiky = base.copy()
    spiky[10] = 201
    assert hr_filter_reason(spiky, speed, valid, on) == "hr_filter:max_high"
    assert hr_filter_reason(np.full(n, 150.0), speed, valid, on) == "hr_filter:std_low"
    assert hr_filter_reason(300 - base, speed, valid, on) == "hr_filter:corr_low"
    typed = replace(on, drop_types=("STEADY",))
    assert hr_filter_reason(base, speed, valid, typed) == "hr_filter:type"
    assert hr_filter_reason(base, speed, valid, replace(on, drop_types=("INTERVALS",))) is None


def test_workout_type_rules():
    assert hr_workout_type(np.full(40, 150.0)) == "unknown"  # fewer than 50 samples
    assert hr_workout_type(175 + np.sin(np.arange(60))) == "intensive"
    assert hr_workout_type(155 + np.sin(np.arange(60))) == "steady"
    assert hr_workout_type(135 + np.sin(np.arange(60))) == "recovery"
    alternating = np.where((np.arange(60) // 5) % 2 == 0, 178.0, 135.0)
    assert hr_workout_type(alternating) == "intervals"
    with_gaps = np.where(np.arange(60) % 7 == 0, np.nan, 175.0)  # NaN samples are ignored
    assert hr_workout_type(with_gaps) == "intensive"
