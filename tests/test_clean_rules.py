"""Every rule fires exactly when it should: just below vs just above each threshold."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest

from hrpred.clean.config import CleanConfig, RuleConfig
from hrpred.clean.pauses import PAUSE_MIN_S
from hrpred.clean.rules import (
    longest_run,
    pearson,
    rule_flags,
    structural_reason,
    sudden_changes,
)
from hrpred.clean.workout import Workout, coerce_workout

N = 100
Flags = Callable[..., dict[str, float]]


@pytest.fixture(scope="module")
def rules(config) -> RuleConfig:
    """The rule thresholds of params.yaml (the cases below sit just around them)."""
    return config(CleanConfig, "clean").rules


@pytest.fixture(scope="module")
def flags_of(rules: RuleConfig) -> Flags:
    def flags(w: dict[str, np.ndarray], cfg: RuleConfig | None = None) -> dict[str, float]:
        return rule_flags(w["ts"], w["hr"], w["alt"], w["speed"], w["speed"], cfg or rules)

    return flags


def base() -> dict[str, np.ndarray]:
    """A plain workout no rule flags: 100 samples, 10 s apart (16.5 min), HR 150 +- 8."""
    i = np.arange(N)
    hr = 150.0 + 8.0 * np.sin(i / 5.0)
    return {
        "ts": 1_400_000_000 + 10 * i,
        "hr": hr,
        "alt": 100.0 + 5.0 * np.sin(i / 20.0),
        "speed": 9.0 + 0.1 * (hr - 150.0),
    }


def test_base_workout_is_clean(flags_of):
    assert flags_of(base()) == {}


def _with(**kw: np.ndarray) -> dict[str, np.ndarray]:
    w = base()
    w.update(kw)
    return w


def _hr(fn) -> np.ndarray:
    hr = base()["hr"].copy()
    fn(hr)
    return hr


def _set(idx, value):
    def f(a):
        a[idx] = value

    return f


HR_CASES = [
    # (flag, HR just inside the rule, HR just past it)
    ("hr_zero", _hr(_set(50, 1.0)), _hr(_set(50, 0.0))),
    ("hr_too_low", _hr(_set(50, 30.0)), _hr(_set(50, 29.9))),
    ("hr_too_high", _hr(_set(50, 220.0)), _hr(_set(50, 220.1))),
    ("hr_flatline", _hr(_set(slice(40, 60), 150.0)), _hr(_set(slice(40, 61), 150.0))),
]


@pytest.mark.parametrize("flag, below, above", HR_CASES, ids=[c[0] for c in HR_CASES])
def test_hr_value_rules(flag, below, above, flags_of):
    assert flag not in flags_of(_with(hr=below, speed=base()["speed"]))
    assert flag in flags_of(_with(hr=above, speed=base()["speed"]))


def test_hr_spike_step_threshold(flags_of):
    hr = np.full(N, 150.0) + np.sin(np.arange(N))  # small steps
    hr[50] = hr[49] + 40.0  # step of exactly 40: no flag
    w = _with(hr=hr)
    assert "hr_spike" not in flags_of(w)
    hr[50] = hr[49] + 40.5
    assert "hr_spike" in flags_of(_with(hr=hr))


def test_low_variance(flags_of):
    hr = 150.0 + np.where(np.arange(N) % 2 == 0, 5.05, -5.05)  # std 5.05
    assert "hr_low_variance" not in flags_of(_with(hr=hr))
    hr = 150.0 + np.where(np.arange(N) % 2 == 0, 4.95, -4.95)
    assert "hr_low_variance" in flags_of(_with(hr=hr))
    # Needs more than low_std_min_points samples.
    short = {k: v[:50] for k, v in _with(hr=hr).items()}
    assert "hr_low_variance" not in flags_of(short)


def _drop(size: float, span: int) -> np.ndarray:
    """HR falling by `size` between samples 39 and 39 + span (span * 10 s), linearly."""
    hr = np.full(N, 160.0) + 0.01 * np.arange(N)
    end = 39 + span
    hr[end:] -= size
    hr[39 : end + 1] = np.linspace(hr[39], hr[end], span + 1)
    return hr


def test_sudden_drop_within_60_s(flags_of):
    # 50.5 BPM in 50 s: flag; 49.9 in 50 s: no; 51 in 70 s: no (at most 36 within 60 s).
    assert "hr_sudden_drop" in flags_of(_with(hr=_drop(50.5, 5)))
    assert "hr_sudden_drop" not in flags_of(_with(hr=_drop(49.9, 5)))
    assert "hr_sudden_drop" not in flags_of(_with(hr=_drop(51.0, 7)))
    # The first start index whose 60-s window reaches the drop (reference scans from 0).
    assert flags_of(_with(hr=_drop(55.0, 1)))["hr_sudden_drop"] == 35.0


def test_sudden_rise_skips_the_start(flags_of):
    rise = 320.0 - _drop(50.5, 5)  # mirror: a rise from sample 39
    assert "hr_sudden_rise" in flags_of(_with(hr=rise))
    early = np.roll(rise, -35)  # the rise now starts at sample 4 (< sudden_rise_skip)
    early[-35:] = early[-36]
    assert "hr_sudden_rise" not in flags_of(_with(hr=early))


def _speed(fn) -> np.ndarray:
    s = base()["speed"].copy()
    fn(s)
    return s


SPEED_CASES = [
    ("speed_too_high", _speed(_set(slice(10, 15), 26.0)), _speed(_set(slice(10, 16), 26.0))),
    ("speed_negative", _speed(_set(5, 0.0)), _speed(_set(5, -0.1))),
]


@pytest.mark.parametrize("flag, below, above", SPEED_CASES, ids=[c[0] for c in SPEED_CASES])
def test_speed_value_rules(flag, below, above, flags_of):
    assert flag not in flags_of(_with(speed=below))
    assert flag in flags_of(_with(speed=above))


def test_speed_spike_step(flags_of):
    s = np.full(N, 10.0)
    s[50:] = 25.0  # step of exactly 15
    assert "speed_spike" not in flags_of(_with(speed=s))
    s[50:] = 25.1
    assert "speed_spike" in flags_of(_with(speed=s))


def test_zero_speed_with_high_hr(flags_of):
    hr = np.full(N, 145.0) + np.sin(np.arange(N)) * 6
    s = np.full(N, 9.0) + 0.1 * (hr - 145)
    s[20:30] = 0.5  # 10 samples still and HR > 140 (sin can dip: force HR)
    hr[20:31] = 141.0 + np.arange(11) * 0.1
    assert "speed_zero_moving" not in flags_of(_with(hr=hr, speed=s))
    s[30] = 0.5
    assert flags_of(_with(hr=hr, speed=s))["speed_zero_moving"] == 11


def test_hr_speed_mismatch(flags_of):
    rng = np.random.default_rng(0)
    hr = base()["hr"]
    s = 9.0 + rng.normal(0, 1, N)
    s -= np.polyval(np.polyfit(hr, s, 1), hr) - s.mean()  # uncorrelated with HR exactly
    assert "hr_speed_mismatch" in flags_of(_with(speed=s))
    assert "hr_speed_mismatch" not in flags_of(base())


def test_correlation_and_spread_flags_follow_their_conditions(flags_of, rules):
    """SP05 and PH01 (c) share one correlation, TS05 one spread, AL01 one step size (each
    computed once per workout): every value and every gate is as when each rule computed
    its own, over random workouts and point-count thresholds on both sides of the data."""
    rng = np.random.default_rng(27)
    fire = dict(mismatch_corr=2.0, offset_c_corr=-2.0, offset_c_hr_bpm=1e9)
    for _ in range(300):
        n = int(rng.integers(2, 40))
        hr = rng.normal(120.0, 40.0, n)
        speed = np.where(rng.random(n) < 0.3, 0.0, rng.normal(9.0, 2.0, n))
        ts = 1_400_000_000 + np.cumsum(rng.integers(0, 40, n))
        w = {"ts": ts, "hr": hr, "alt": rng.normal(100.0, 30.0, n), "speed": speed}
        cfg = replace(
            rules,
            **fire,
            mismatch_min_points=int(rng.integers(0, 12)),
            low_std_min_points=int(rng.integers(0, 12)),
            min_points=int(rng.integers(0, 12)),
            ts_irregular_std_s=float(rng.uniform(0.0, 15.0)),
            altitude_step_m=float(rng.uniform(0.0, 60.0)),
        )
        got = flags_of(w, cfg)
        both = (hr > 50) & (speed > 0)
        r = pearson(speed[both], hr[both])
        want = {}
        if both.sum() > cfg.mismatch_min_points and n > cfg.low_std_min_points and np.isfinite(r):
            want["hr_speed_mismatch"] = r
        if n >= cfg.min_points and both.sum() > 2 and np.isfinite(r):
            want["offset_suspect_c"] = r
        dts = np.diff(ts).astype(np.float64)
        if dts.std() > cfg.ts_irregular_std_s:
            want["timestamp_irregular"] = float(dts.std())
        if (np.abs(np.diff(w["alt"])) > cfg.altitude_step_m).any():
            want["altitude_spike"] = float(np.abs(np.diff(w["alt"])).max())
        assert {k: v for k, v in got.items() if k in SHARED} == want


SHARED = {"hr_speed_mismatch", "offset_suspect_c", "timestamp_irregular", "altitude_spike"}


def test_timestamp_rules(flags_of, rules):
    ts = base()["ts"].copy()  # regular 10-s steps: no timestamp flag (base test)
    ts2 = ts.copy()
    ts2[50] = ts2[49]  # duplicate time
    assert "timestamp_duplicate" in flags_of(_with(ts=ts2))
    steps = np.where(np.arange(N - 1) % 2 == 0, 10, 75)  # std 32.5 > 30
    jumpy = np.concatenate(([ts[0]], ts[0] + np.cumsum(steps)))
    assert "timestamp_irregular" in flags_of(_with(ts=jumpy))
    steps = np.where(np.arange(N - 1) % 2 == 0, 10, 69)  # std 29.5
    calm = np.concatenate(([ts[0]], ts[0] + np.cumsum(steps)))
    assert "timestamp_irregular" not in flags_of(_with(ts=calm))
    # TS01 as a flag only when gap_action is 'flag'.
    gap = ts.copy()
    gap[60:] += 300
    flag_cfg = replace(rules, gap_action="flag")
    assert "timestamp_gap" in flags_of(_with(ts=gap), flag_cfg)
    for action in ("reject", "pause"):  # a reject, or judged pause / clock jump
        assert "timestamp_gap" not in flags_of(_with(ts=gap), replace(rules, gap_action=action))


def test_altitude_spike(flags_of):
    alt = np.full(N, 100.0)
    alt[50:] = 150.0  # step of exactly 50 m
    assert "altitude_spike" not in flags_of(_with(alt=alt))
    alt[50:] = 150.5
    assert "altitude_spike" in flags_of(_with(alt=alt))


def test_offset_suspects(flags_of):
    w = base()
    # (a) mean speed > 10 and mean HR < 145.
    fast_low = _with(hr=w["hr"] - 10.0, speed=w["speed"] + 1.5)
    assert "offset_suspect_a" in flags_of(fast_low)
    assert "offset_suspect_a" not in flags_of(_with(hr=w["hr"] - 4.0, speed=w["speed"] + 1.5))
    # (b) max HR < 160, duration > 20 min, mean speed > 8.
    long_ts = 1_400_000_000 + 13 * np.arange(N)  # 21.45 min
    assert "offset_suspect_b" in flags_of(_with(ts=long_ts, hr=w["hr"] - 1.0))
    assert "offset_suspect_b" not in flags_of(_with(hr=w["hr"] - 1.0))  # 16.5 min
    # (c) Pearson(speed, HR) > 0.3 and mean HR < 140.
    assert "offset_suspect_c" in flags_of(_with(hr=w["hr"] - 11.0))
    assert "offset_suspect_c" not in flags_of(_with(hr=w["hr"] - 9.0))


def _workout(**kw) -> Workout:
    w = base()
    arrays = {
        "ts": w["ts"],
        "hr": w["hr"],
        "alt": w["alt"],
        "speed": w["speed"],
        "lat": None,
        "lon": None,
    }
    arrays.update(kw)
    return Workout(line=1, workout_id=1, user_id=1, sport="run", gender="male", **arrays)


def test_structural_rules_in_order(rules):
    assert structural_reason(_workout(), rules) is None
    assert structural_reason(_workout(hr=np.empty(0)), rules) == "missing_hr"
    assert structural_reason(_workout(ts=np.empty(0, np.int64)), rules) == "missing_timestamp"
    assert structural_reason(_workout(alt=np.empty(0)), rules) == "missing_altitude"
    assert structural_reason(_workout(speed=np.ones(N - 1)), rules) == "length_mismatch"
    lat = np.full(N - 3, 45.0)
    assert structural_reason(_workout(lat=lat, lon=lat), rules) == "length_mismatch"
    short = {k: v[:49] for k, v in base().items()}
    long_ts = 1_400_000_000 + 10 * np.arange(49) * 4
    assert structural_reason(_workout(**{**short, "ts": long_ts}), rules) == "too_few_points"
    fifty = {k: v[:50] for k, v in base().items()}
    fifty["ts"] = 1_400_000_000 + 10 * np.arange(50) * 4
    assert structural_reason(_workout(**fifty), rules) is None
    back = base()["ts"].copy()
    back[30] = back[28]
    assert structural_reason(_workout(ts=back), rules) == "timestamp_nonmonotonic"
    # Duration: 5.0 min passes, 4.98 min does not (3 s steps: 99 * 3 = 297 s).
    assert structural_reason(_workout(ts=1_400_000_000 + 3 * np.arange(N)), rules) == "too_short"
    five = 1_400_000_000 + np.round(np.linspace(0, 300, N)).astype(np.int64)
    assert structural_reason(_workout(ts=five), rules) is None
    gap = base()["ts"].copy()
    reject = replace(rules, gap_action="reject")
    assert PAUSE_MIN_S == 60.0  # the gap threshold (hrpred/clean/pauses.py)
    gap[60:] += 50  # step 60 s: allowed
    assert structural_reason(_workout(ts=gap), reject) is None
    gap[60:] += 1
    assert structural_reason(_workout(ts=gap), reject) == "timestamp_gap"
    assert structural_reason(_workout(ts=gap), replace(reject, gap_action="flag")) is None
    # 'pause' (params.yaml) judges the gap later, in the stage (tests/test_clean_pauses.py).
    assert structural_reason(_workout(ts=gap), replace(reject, gap_action="pause")) is None
    for bad, ok in ((-500.1, -500.0), (6000.1, 6000.0)):
        alt = base()["alt"].copy()
        alt[10] = ok
        assert structural_reason(_workout(alt=alt), rules) is None
        alt[10] = bad
        assert structural_reason(_workout(alt=alt), rules) == "altitude_unrealistic"


def test_coerce_workout_reasons():
    good = {
        "id": 5,
        "userId": 7,
        "sport": "run",
        "gender": "Female",
        "timestamp": [1, 2, 3],
        "heart_rate": [100, 101, 102],
        "altitude": [1.0, 2.0, 3.0],
    }
    w = coerce_workout(3, good)
    assert isinstance(w, Workout) and w.gender == "female" and w.speed is None
    assert coerce_workout(3, {**good, "id": "x"}) == "bad_values:id"
    assert coerce_workout(3, {k: v for k, v in good.items() if k != "sport"}) == (
        "missing_key:sport"
    )
    assert coerce_workout(3, {**good, "heart_rate": [1, "a", 3]}) == "bad_values:heart_rate"
    assert coerce_workout(3, {**good, "heart_rate": [1, float("nan"), 3]}) == (
        "bad_values:heart_rate"
    )
    assert coerce_workout(3, {**good, "timestamp": [1.5, 2, 3]}) == "bad_values:timestamp"
    assert coerce_workout(3, {**good, "altitude": [[1], [2], [3]]}) == "bad_values:altitude"
    assert coerce_workout(3, {**good, "gender": None}).gender == "unknown"


def test_longest_run():
    assert longest_run(np.array([1, 1, 2, 2, 2, 3])) == (3, 2)
    assert longest_run(np.array([])) == (0, 0)


def _sudden_by_lag(ts, hr, window_s, max_lag):
    """Reference: one lag at a time, plain indexing."""
    n = hr.size
    drop, rise = np.zeros(n), np.zeros(n)
    for i in range(n):
        for j in range(i + 1, min(i + max_lag, n - 1) + 1):
            if ts[j] - ts[i] < window_s:
                drop[i] = min(drop[i], hr[j] - hr[i])
                rise[i] = max(rise[i], hr[j] - hr[i])
    return drop, rise


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sudden_changes_against_a_loop(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    steps = rng.choice([0, 1, 2, 5, 7, 30, 120], size=n, p=[0.05, 0.3, 0.2, 0.2, 0.1, 0.1, 0.05])
    ts = np.cumsum(steps).astype(np.int64 if seed % 2 else np.float64)
    hr = np.round(rng.normal(150.0, 25.0, n))
    for window_s, max_lag in [(60.0, 64), (10.0, 3), (1000.0, 5), (0.5, 64)]:
        got = sudden_changes(ts, hr, window_s, max_lag)
        ref = _sudden_by_lag(ts, hr, window_s, max_lag)
        assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1])
