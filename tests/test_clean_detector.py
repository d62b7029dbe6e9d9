"""Detector pieces against independent references, and its calls on hand-built workouts."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from hrpred.clean.analysis import sample_faults
from hrpred.clean.config import CleanConfig, DetectorConfig
from hrpred.clean.detector import LevelModel, analyse, decide
from hrpred.clean.level import full_threshold, level_stats
from hrpred.clean.population import later_deficits, level_models
from hrpred.clean.signal import Segment, best_segments, exp_smooth, identical_runs, short_runs


@pytest.fixture(scope="module")
def det(config) -> DetectorConfig:
    """The detector settings of params.yaml."""
    return config(CleanConfig, "clean").detector


def best_segment(y: np.ndarray, X: np.ndarray, min_len: int, step: int) -> Segment:
    """The single best segment of either sign (the better of `best_segments`' two)."""
    low, high = best_segments(y, X, min_len, step)
    return low if low[3] >= high[3] else high


def loop_smooth(x, t, tau, y0):
    """Reference first-order filter: explicit recursion over irregular steps."""
    y = np.empty(x.size)
    prev = y0
    y[0] = prev
    for i in range(1, x.size):
        a = np.exp(-(t[i] - t[i - 1]) / tau)
        prev = x[i] + (prev - x[i]) * a
        y[i] = prev
    return y


def test_exp_smooth_matches_recursion():
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.integers(1, 30, 400)).astype(float)
    x = rng.normal(10, 3, 400)
    np.testing.assert_allclose(exp_smooth(x, t, 45.0, y0=0.0), loop_smooth(x, t, 45.0, 0.0))
    # Spans of thousands of time constants (block rebasing, no overflow).
    np.testing.assert_allclose(
        exp_smooth(x, t, 2.0, y0=5.0), loop_smooth(x, t, 2.0, 5.0), rtol=1e-9, atol=1e-9
    )


def test_best_segment_matches_brute_force():
    rng = np.random.default_rng(1)
    n = 60
    x = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x])
    y = 3.0 + 2.0 * x + rng.normal(0, 0.5, n)
    y[22:41] -= 4.0
    best = (-1.0, None)
    for a in range(n):
        for b in range(a + 5, n + 1):
            if n - (b - a) < 5:
                continue
            s = np.zeros(n)
            s[a:b] = 1.0
            Z = np.column_stack([X, s])
            coef, *_ = np.linalg.lstsq(Z, y, rcond=None)
            r0 = y - X @ np.linalg.lstsq(X, y, rcond=None)[0]
            r1 = y - Z @ coef
            drop = (r0 @ r0) - (r1 @ r1)
            if drop > best[0]:
                best = (drop, (a, b, coef[2]))
    a, b, delta, drop = best_segment(y, X, 5, 1)
    assert (a, b) == best[1][:2]
    assert delta == pytest.approx(best[1][2])
    assert drop == pytest.approx(best[0])
    # A coarse grid with refinement finds the same segment.
    assert best_segment(y, X, 5, 4)[:2] == (a, b)


def test_run_masks():
    m = np.array([0, 1, 1, 0, 1, 1, 1, 1, 0, 1], dtype=bool)
    np.testing.assert_array_equal(short_runs(m, 2), [0, 1, 1, 0, 0, 0, 0, 0, 0, 1])
    x = np.array([5, 5, 5, 1, 2, 2, 2, 2, 3])
    np.testing.assert_array_equal(identical_runs(x, 4), [0, 0, 0, 0, 1, 1, 1, 1, 0])


def synth(rng, n=450, level=0.0, intervals=False, slope=6.0):
    """A workout whose HR follows the speed with first-order kinetics plus noise."""
    dt = rng.integers(6, 12, n).astype(float)
    dt[0] = 0.0
    t = np.cumsum(dt)
    speed = np.full(n, rng.uniform(9.5, 12.5))
    if intervals:
        speed += np.where((t // 240) % 2 == 1, 4.0, -2.0)
    speed = np.maximum(speed + rng.normal(0, 0.3, n), 0.0)
    alt = 100.0 + 3.0 * np.sin(t / 400.0)
    hr = 62.0 + level + slope * exp_smooth(speed, t, 40.0, y0=3.0) + rng.normal(0, 2.5, n)
    ts = (1_400_000_000 + t).astype(np.int64)
    return ts, np.round(hr), speed, alt


def run(cfg, ts, hr, speed, alt, model=None):
    an = analyse(ts, hr, speed, alt, 30.0, 220.0, cfg)
    if model is None:
        model = LevelModel(np.array([0.0, 0.0, 0.0]), 0)
        model.coef[0] = np.nan  # no level check
    return an, decide(an, hr, model, False, 30.0, 220.0, cfg)


def test_sample_faults(det):
    rng = np.random.default_rng(2)
    ts, hr, speed, alt = synth(rng)
    hr[100:110] = 0.0  # dropout: abrupt fall to 0
    hr[200] += 80.0  # spike
    hr[300:340] = hr[300]  # flatline
    dropout, low, spike, flat = sample_faults(hr, 30.0, 220.0, det)
    assert set(np.flatnonzero(dropout)) == set(range(100, 110))
    assert set(np.flatnonzero(spike)) == {200}
    assert set(np.flatnonzero(flat)) == set(range(300, 340))
    assert not low.any()
    # Low values reached gradually (a large offset at a slow start) are not dropouts.
    ramp = hr.copy()
    ramp[:10] = np.linspace(0, 60, 10)
    dropout, low, _, _ = sample_faults(ramp, 30.0, 220.0, det)
    assert not dropout[:10].any() and low[:5].all()


@pytest.mark.parametrize("intervals", [False, True])
def test_clean_workouts_have_no_fault(intervals, det):
    rng = np.random.default_rng(3 + intervals)
    for _ in range(5):
        an, v = run(det, *synth(rng, intervals=intervals))
        assert an.segments == [] and v.faults == [] and v.offset_kind == "none"
        assert not v.invalid.any()


@pytest.mark.parametrize("end", [450, 380])
def test_partial_offset_found_and_corrected(end, det):
    rng = np.random.default_rng(5)
    ts, hr, speed, alt = synth(rng, intervals=True)
    truth = hr.copy()
    hr[250:end] -= 35.0
    an, v = run(det, ts, hr, speed, alt)
    assert v.faults == ["offset_partial"] and v.offset_kind == "offset_partial"
    assert abs(v.offset_start - 250) <= 1 and abs(v.offset_end - end) <= 1
    assert v.offset_bpm == pytest.approx(35.0, abs=2.0)
    assert np.abs(v.heart_rate - truth).mean() < 2.0
    assert 0.5 < v.confidence <= 1.0


def test_cadence_lock_is_masked(det):
    rng = np.random.default_rng(6)
    ts, hr, speed, alt = synth(rng)
    hr[150:230] = np.round(181.0 + rng.normal(0, 1.5, 80))
    an, v = run(det, ts, hr, speed, alt)
    assert v.faults == ["cadence_lock"] and v.offset_kind == "none"
    m = det.span_margin  # the lock's estimated bounds, widened
    assert set(np.flatnonzero(v.invalid)) == set(range(150 - m, 230 + m))


def _user_model(cfg: DetectorConfig, rng, n_workouts: int):
    """Level statistics of a user's clean workouts, and the LOO model of the last one."""
    stats, users, works = [], [], []
    for _ in range(n_workouts):
        ts, hr, speed, alt = synth(rng, level=rng.normal(0, 3))
        an = analyse(ts, hr, speed, alt, 30.0, 220.0, cfg)
        stats.append(an.stats)
        users.append(1)
        works.append((ts, hr, speed, alt))
    return np.array(users), np.array(stats), works


def _last_run_low(cfg: DetectorConfig):
    """Six clean runs of one user, the last read 30 BPM low: (the last run's arrays, its low
    HR and analysis, the level models' coef and k)."""
    users, stats, works = _user_model(cfg, np.random.default_rng(7), 6)
    ts, hr, speed, alt = works[-1]
    low = hr - 30.0
    an = analyse(ts, low, speed, alt, 30.0, 220.0, cfg)
    stats[-1] = an.stats
    coef, k, _ = level_models(users, stats, np.ones(len(stats), bool), cfg)
    return (ts, hr, speed, alt), low, an, coef, k


def test_full_offset_against_the_users_other_workouts(det):
    (ts, hr, speed, alt), low, an, coef, k = _last_run_low(det)
    model = LevelModel(coef[-1], int(k[-1]))
    assert model.k == 5
    v = decide(an, low, model, False, 30, 220, det)
    assert v.faults == ["offset_full"] and v.offset_kind == "offset_full"
    assert v.offset_bpm == pytest.approx(30.0, abs=5.0) and v.deficit_bpm == v.offset_bpm
    assert (v.offset_start, v.offset_end) == (0, low.size)
    # The same workout without the offset is left alone.
    an = analyse(ts, hr, speed, alt, 30.0, 220.0, det)
    v = decide(an, hr, LevelModel(coef[-1], int(k[-1])), False, 30, 220, det)
    assert "offset_full" not in v.faults


def test_no_full_offset_when_the_next_runs_read_low_too(det):
    """The runner's next runs reading low by half the deficit or more: their level changed
    (a new watch, a break), so the low run is no sensor offset; by less: still one."""
    _, low, an, coef, k = _last_run_low(det)
    for later, offset in ((20.0, False), (10.0, True), (float("nan"), True)):
        model = LevelModel(coef[-1], int(k[-1]), later_deficit_bpm=later)
        v = decide(an, low, model, False, 30, 220, det)
        assert ("offset_full" in v.faults) == offset, later
        assert v.heart_rate[0] == (low[0] + v.offset_bpm if offset else low[0])
        assert ("level changed" in v.reason) == (not offset)
    off = decide(an, low, LevelModel(coef[-1], int(k[-1]), later_deficit_bpm=20.0), False, 30,
                 220, replace(det, full_persist_share=1.0))  # fmt: skip
    assert "offset_full" in off.faults  # 20 < the whole deficit (~30)


def test_later_deficits_against_a_loop(det):
    """Median deficit of each run's user's next `runs` eligible runs (strictly later) under
    the run's own model, against a plain loop."""
    rng = np.random.default_rng(3)
    n = 40
    users = rng.integers(0, 4, n)
    starts = rng.permutation(n).astype(float) * 86400.0
    stats = np.array([level_stats(rng.uniform(5, 15, 30), rng.uniform(0, 1, 30),
                                  rng.normal(150, 10, 30)) for _ in range(n)])  # fmt: skip
    eligible = rng.random(n) < 0.8
    coef = np.column_stack((rng.normal(80, 5, n), rng.uniform(4, 8, n), rng.uniform(0, 5, n)))
    got = later_deficits(users, starts, stats, eligible, coef, 3)
    for i in range(n):
        later = [
            j for j in range(n) if users[j] == users[i] and eligible[j] and starts[j] > starts[i]
        ]
        later = sorted(later, key=lambda j: starts[j])[:3]
        if not later:
            assert np.isnan(got[i])
            continue
        x = stats[later]
        mean = x[:, [1, 2, 6]] / x[:, [0]]
        want = np.median(
            coef[i, 0] + coef[i, 1] * mean[:, 0] + coef[i, 2] * mean[:, 1] - mean[:, 2]
        )
        assert got[i] == pytest.approx(want, rel=1e-9)
    assert np.isnan(later_deficits(users, starts, stats, eligible, coef, 0)).all()


def test_level_models_are_leave_one_out_least_squares(det):
    rng = np.random.default_rng(8)
    cfg = replace(det, level_ridge_points=0.0)
    users = np.array([1, 1, 1, 2, 2, 3])
    data = []
    for _ in users:
        m = 50
        d, t = rng.uniform(5, 15, m), rng.uniform(0, 1.5, m)
        h = 80 + 6 * d + 4 * t + rng.normal(0, 2, m)
        data.append((d, t, h))
    stats = np.array([level_stats(*x) for x in data])
    coef, k, pop = level_models(users, stats, np.ones(6, bool), cfg, rounds=1)
    np.testing.assert_array_equal(k, [2, 2, 2, 1, 1, 0])
    for i in range(6):
        others = [j for j in range(6) if j != i and users[j] == users[i]]
        if not others:
            continue
        d, t, h = (np.concatenate([data[j][c] for j in others]) for c in range(3))
        X = np.column_stack([np.ones(d.size), d, t])
        np.testing.assert_allclose(coef[i], np.linalg.lstsq(X, h, rcond=None)[0], rtol=1e-6)
    # A user with no other workout gets the population model.
    np.testing.assert_allclose(coef[5], pop)


def test_full_threshold_widens_with_fewer_workouts(det):
    values = [full_threshold(k, det) for k in (1, 2, 3, 10, 100)]
    assert values == sorted(values, reverse=True)
    assert values[-1] == pytest.approx(det.full_min_offset_bpm, rel=0.01)
    assert full_threshold(0, det) == det.full_pop_min_offset_bpm
