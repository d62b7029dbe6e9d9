"""The real sensor failure modes on hand-built runs: each is found, named and spanned; the
physiology they resemble (a walk, a pause, a warm-up) is left alone."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from synthetic_clean import physio_run

from hrpred.clean.config import CleanConfig, DetectorConfig
from hrpred.clean.detector import LevelModel, Verdict, analyse, decide
from hrpred.clean.locks import follows_speed, quiet_lock
from hrpred.clean.sensor import low_dropouts

SEEDS = (0, 1, 2)
NO_LEVEL = LevelModel(np.array([np.nan, 0.0, 0.0]), 0)  # no level check


@pytest.fixture(scope="module")
def det(config) -> DetectorConfig:
    return config(CleanConfig, "clean").detector


def verdict(det, run, pauses=None, model=NO_LEVEL) -> Verdict:
    an = analyse(run["ts"], run["hr"], run["speed"], run["alt"], 30.0, 220.0, det, pauses)
    return decide(an, run["hr"], model, False, 30.0, 220.0, det)


def span(v: Verdict, fault: str) -> tuple[int, int]:
    idx = np.flatnonzero(v.spans[fault])
    return int(idx[0]), int(idx[-1]) + 1


def elapsed(run) -> np.ndarray:
    return (run["ts"] - run["ts"][0]).astype(float)


@pytest.mark.parametrize("seed", SEEDS)
def test_walks_and_pauses_are_physiology(det, seed):
    """A run that slows to a walk and recovers (HR follows), or stands in a pause: no fault,
    no correction, nothing masked; the same with the user's own level as reference."""
    rng = np.random.default_rng(seed)
    walk = physio_run(rng, walks=((150, 175), (300, 330)))
    pause = physio_run(rng, pauses=((200, 600.0),))
    long_walk = physio_run(rng, walks=((120, 220),))
    for run, pauses in ((walk, None), (pause, np.array([200])), (long_walk, None)):
        v = verdict(det, run, pauses)
        assert v.faults == [] and v.offset_kind == "none" and not v.invalid.any(), v.reason
    own = LevelModel(np.array([70.0, 7.5, 0.0]), 5)  # ~ the runs' own HR-vs-speed line
    v = verdict(det, walk, model=own)
    assert v.faults == [] and v.offset_kind == "none", v.reason


@pytest.mark.parametrize("seed", SEEDS)
def test_low_dropout(det, seed):
    rng = np.random.default_rng(seed)
    run = physio_run(rng)
    run["hr"][200:230] = np.round(40 + rng.normal(0, 3, 30))
    v = verdict(det, run)
    assert v.faults == ["low_dropout"] and span(v, "low_dropout") == (200, 230)
    assert v.invalid.sum() == 30 and v.offset_kind == "none"


def test_low_values_after_a_pause_are_no_dropout(det):
    hr = np.full(40, 150.0)
    resume = np.zeros(40, dtype=bool)
    resume[20] = True
    hr[20] = 58.0  # HR recovered while standing, then climbs
    assert not low_dropouts(hr, det, resume).any()
    assert low_dropouts(hr, det, np.zeros(40, dtype=bool))[20]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("reads", ["low", "cadence"])
def test_slow_lock(det, seed, reads):
    rng = np.random.default_rng(seed)
    run = physio_run(rng)
    k = int(np.searchsorted(elapsed(run), 200.0))
    lock = np.linspace(70, 80, k) if reads == "low" else run["cadence"][:k]
    run["hr"][:k] = np.round(lock + rng.normal(0, 1.2, k))
    v = verdict(det, run)
    assert v.faults == ["slow_lock"]
    start, end = span(v, "slow_lock")
    assert start == 0 and k <= end <= k + 2 * det.span_margin


@pytest.mark.parametrize("seed", SEEDS)
def test_strap_drying(det, seed):
    rng = np.random.default_rng(seed)
    run = physio_run(rng)
    t = elapsed(run)
    k = int(np.searchsorted(t, 600.0))
    factor = 0.7 + 0.3 * 0.5 * (1 - np.cos(np.pi * t[:k] / t[k]))
    run["hr"][:k] = np.round(run["hr_true"][:k] * factor + rng.normal(0, 2.5, k))
    v = verdict(det, run)
    assert v.faults == ["strap_drying"] and v.offset_kind == "none"
    start, end = span(v, "strap_drying")
    assert start == 0 and abs(end - k) <= 10


@pytest.mark.parametrize("seed", SEEDS)
def test_lagging_noisy(det, seed):
    rng = np.random.default_rng(seed)
    run = physio_run(rng, walks=((100, 130), (250, 280)))
    t = elapsed(run)
    lagged = np.interp(t[150:330] - 45.0, t, run["hr_true"])
    run["hr"][150:330] = np.round(lagged + rng.normal(0, 7, 180))
    v = verdict(det, run)
    assert v.faults == ["lagging_noisy"]
    start, end = span(v, "lagging_noisy")
    overlap = min(end, 330) - max(start, 150)
    assert overlap >= 0.75 * 180 and (end - start) <= 180 + 40


@pytest.mark.parametrize("seed", SEEDS)
def test_cadence_follow_and_fixed_lock(det, seed):
    rng = np.random.default_rng(seed)
    run = physio_run(rng)
    run["speed"][200:300] += np.linspace(-1.5, 1.5, 100)  # the pace changes in the lock
    cadence = np.clip(172 + 2.5 * (run["speed"] - 11.0), 150, 190)
    follow = run["hr"].copy()
    follow[200:300] = np.round(cadence[200:300] + rng.normal(0, 1.5, 100))
    v = verdict(det, {**run, "hr": follow})
    assert v.faults == ["cadence_follow"]
    start, end = span(v, "cadence_follow")
    assert start <= 200 and end >= 300 and end - start <= 100 + 4 * det.span_margin
    fixed = run["hr"].copy()
    fixed[200:280] = np.round(181 + rng.normal(0, 1.5, 80))
    assert verdict(det, {**run, "hr": fixed}).faults == ["cadence_lock"]


@pytest.mark.parametrize("seed", SEEDS)
def test_a_cadence_read_below_the_heart_is_a_lock(det, seed):
    """A runner whose heart beats above their cadence reads low while the sensor is locked:
    the low part switches like a partial offset, but reads white about a line in the speed
    where an offset keeps the heart's wander (`_low_lock`). The same part offset from the
    heart stays a partial offset; with a white test nothing passes, the lock is none."""
    rng = np.random.default_rng(seed)
    run = physio_run(rng, pace_kmh=11.0, level_bpm=40.0)
    run["speed"][200:300] += np.linspace(-1.5, 1.5, 100)  # the pace changes in the lock
    cadence = np.clip(172 + 2.5 * (run["speed"] - 11.0), 150, 190)
    locked = run["hr"].copy()
    locked[200:300] = np.round(cadence[200:300] + rng.normal(0, 1.5, 100))
    v = verdict(det, {**run, "hr": locked})
    assert v.faults == ["cadence_follow"], v.reason
    assert "below the rest" in v.reason and v.offset_kind == "none"
    start, end = span(v, "cadence_follow")
    assert start <= 200 and end >= 300 and end - start <= 100 + 4 * det.span_margin
    strict = verdict(replace(det, quiet_max_white=0.0), {**run, "hr": locked})
    assert not {"cadence_follow", "cadence_lock"} & set(strict.faults), strict.reason
    offset = run["hr"].copy()
    offset[200:300] -= 20.0
    assert verdict(det, {**run, "hr": offset}).faults == ["offset_partial"]


def test_follows_speed_reads_the_slope(det):
    rng = np.random.default_rng(4)
    speed = 10 + np.linspace(-1, 1, 60)
    mask = np.ones(60, dtype=bool)
    rising = 172 + 2.5 * (speed - 10) + rng.normal(0, 1.5, 60)
    assert follows_speed(rising, speed, mask, det)[0]
    flat = 180 + rng.normal(0, 1.5, 60)
    assert not follows_speed(flat, speed, mask, det)[0]
    assert follows_speed(flat - 20, speed, mask, det)[0]  # too low for a fixed lock


def test_follows_speed_nearer_the_cadence_than_flat(det):
    """The pace barely varies: the t-statistic cannot tell, the slope can, where a cadence is
    as likely as a fixed lock (below follow_slope_max_bpm); above it the lock is fixed."""
    rng = np.random.default_rng(5)
    speed = 11 + rng.normal(0, 0.15, 40)
    mask = np.ones(40, dtype=bool)
    slope = (det.follow_min_slope + 2.5) / 2  # between the threshold and a cadence's rise
    cadence = 174 + slope * (speed - 11) + rng.normal(0, 1.5, 40)
    follow, tstat = follows_speed(cadence, speed, mask, det)
    assert tstat < det.follow_min_t and follow
    high = cadence - 174 + det.follow_slope_max_bpm + 5
    assert not follows_speed(high, speed, mask, det)[0]


@pytest.mark.parametrize("seed", SEEDS)
def test_quiet_lock_at_the_runners_own_hr(det, seed):
    """A lock reading the cadence at nearly the heart's own level shifts nothing for the
    change point: found by its steady, white reading (its edges are loose: the heart beside
    it reads the same values); a heart's run alone is left alone."""
    rng = np.random.default_rng(seed)
    run = physio_run(rng, pace_kmh=12.0)
    resume = np.zeros(run["hr"].size, dtype=bool)
    normal = np.ones(run["hr"].size, dtype=bool)
    assert quiet_lock(run["hr"], run["speed"], normal, det, resume) is None
    level = float(run["hr_true"][150:300].mean())
    speed = run["speed"][150:300]
    hr = run["hr"].copy()
    hr[150:300] = np.round(level + 2.0 * (speed - speed.mean()) + rng.normal(0, 1.5, 150))
    found = quiet_lock(hr, run["speed"], normal, det, resume)
    assert found is not None
    start, end, _ = found
    assert min(end, 300) - max(start, 150) >= 0.75 * 150 and end - start <= 1.5 * 150


@pytest.mark.parametrize("seed", (2, 5))
def test_a_less_steady_quiet_lock_needs_a_whiter_reading(det, seed):
    """A short lock at the heart's own level is less significant as a steady segment
    (score below quiet_min_score, from quiet_weak_min_score): found when it reads nearer
    pure white noise about its line in the speed (quiet_weak_max_white); not with the
    single tier (quiet_weak_min_score = quiet_min_score) nor a stricter whiteness."""
    rng = np.random.default_rng(seed)
    run = physio_run(rng, pace_kmh=12.0)
    n = run["hr"].size
    resume, normal = np.zeros(n, dtype=bool), np.ones(n, dtype=bool)
    level = float(run["hr_true"][200:240].mean())
    speed = run["speed"][200:240]
    hr = run["hr"].copy()
    hr[200:240] = level + 2.0 * (speed - speed.mean()) + rng.normal(0, 1.2, 40)
    found = quiet_lock(hr, run["speed"], normal, det, resume)
    assert found is not None
    start, end, score = found
    assert det.quiet_weak_min_score <= score < det.quiet_min_score
    assert start <= 205 and end >= 235 and end - start <= 60
    for cfg in (
        replace(det, quiet_weak_min_score=det.quiet_min_score),
        replace(det, quiet_weak_max_white=0.3),
    ):
        assert quiet_lock(hr, run["speed"], normal, cfg, resume) is None


@pytest.mark.parametrize("seed", SEEDS)
def test_whole_run_lock(det, seed):
    rng = np.random.default_rng(seed)
    run = physio_run(rng, walks=((100, 130), (250, 280)))
    run["hr"] = np.round(run["cadence"] + rng.normal(0, 1.5, run["hr"].size))
    v = verdict(det, run)
    assert v.faults == ["whole_run_lock"] and v.invalid.all() and v.offset_kind == "none"


@pytest.mark.parametrize("seed", SEEDS)
def test_stuck_low_against_the_level(det, seed):
    """Flat and low: stuck_low when the level (population or the user's runs) expects far
    more; the same reading is no fault where the level agrees."""
    rng = np.random.default_rng(seed)
    run = physio_run(rng)
    run["hr"] = np.round(80 + rng.normal(0, 1.5, run["hr"].size))
    v = verdict(det, run, model=LevelModel(np.array([90.0, 6.0, 0.0]), 0))
    assert v.faults == ["stuck_low"] and v.invalid.all()
    agree = LevelModel(np.array([80.0, 0.0, 0.0]), 5)
    assert "stuck_low" not in verdict(det, run, model=agree).faults


def test_whole_run_checks_need_a_locked_start(det):
    """A warm start (HR already high) that then tracks the heart's lag is no lock."""
    rng = np.random.default_rng(5)
    run = physio_run(rng, walks=((100, 130), (250, 280)))
    run["hr"][:20] = np.maximum(run["hr"][:20], 150.0)
    assert "whole_run_lock" not in verdict(det, run).faults
    strict = replace(det, start_high_bpm=250.0)  # no start reads that high: no lock call
    locked = {**run, "hr": np.round(run["cadence"] + rng.normal(0, 1.5, run["hr"].size))}
    assert "whole_run_lock" not in verdict(strict, locked).faults


def _saturating_run(rng, hold: int, noise: float, pause_at: int = 380) -> dict[str, np.ndarray]:
    """A hard run at a steady pace whose HR climbs to the runner's maximum and stays there;
    a 5-minute pause at `pause_at` (HR held `hold` samples by the watch, then 20 BPM lower,
    recovering to the maximum in about a minute), as in a real GPX run of ../shared."""
    n, cap = 500, 195.0
    dt = np.full(n, 3.0)
    dt[0] = 0.0
    t = np.cumsum(dt)
    clock = t + np.where(np.arange(n) >= pause_at, 300.0, 0.0)
    hr = np.minimum(150.0 + 40.0 * t / 1140.0, cap)
    after = np.arange(n - pause_at - hold) * 3.0
    hr[pause_at + hold :] = cap - 20.0 * np.exp(-after / 40.0)
    hr[pause_at : pause_at + hold] = hr[pause_at - 1]
    return {
        "ts": (1_400_000_000 + clock).astype(np.int64),
        "hr": np.round(hr + rng.normal(0, noise, n)),
        "speed": 13.5 + rng.normal(0, 0.3, n),
        "alt": np.full(n, 100.0),
    }


def test_a_low_part_soon_after_a_pause_is_recovery_not_an_offset(det):
    """HR that drops across a pause and climbs back is the heart, not a sensor reading low:
    never offset-corrected (without the rule, the change point calls these partial offsets
    and would add ~15-20 BPM to good HR). A real offset away from the pause is still
    corrected."""
    cases = [(s, hold, noise) for s in range(3) for hold in (0, 14) for noise in (0.5, 1.5)]
    runs = [_saturating_run(np.random.default_rng(s), hold, noise) for s, hold, noise in cases]
    pause = np.array([380])
    assert all(verdict(det, run, pause).offset_kind == "none" for run in runs)
    # the rule and the other tests of an offset's edges and depth, off
    no_rule = replace(
        det,
        offset_after_pause_s=0.0,
        edge_min_s=0.0,
        edge_fraction=0.0,
        offset_min_shift_bpm=0.0,
        offset_min_share=0.0,
    )
    assert sum(verdict(no_rule, run, pause).offset_kind != "none" for run in runs) >= 6
    rng = np.random.default_rng(5)
    run = physio_run(rng, pauses=((380, 300.0),))
    run["hr"][150:] -= 35.0  # the sensor reads 35 BPM low from step 150 on
    v = verdict(det, run, pause)
    assert v.offset_kind == "offset_partial" and abs(v.offset_bpm - 35.0) < 4.0, v.reason


def _drifting_run(rng, hold: int = 14) -> dict[str, np.ndarray]:
    """A steady hard run (quiet chest strap) whose HR drifts up 40 BPM/h, with a 5-minute
    pause at step 380: HR held `hold` samples by the watch, then 23 BPM lower, climbing back."""
    n, p = 500, 380
    dt = np.full(n, 3.0)
    dt[0] = 0.0
    t = np.cumsum(dt)
    clock = t + np.where(np.arange(n) >= p, 300.0, 0.0)
    drift = 172.0 + 40.0 * t / 3600.0
    hr = np.minimum(135.0 + (drift - 135.0) * (1 - np.exp(-t / 40.0)), 196.0)
    after = np.arange(n - p - hold) * 3.0
    rec = 173.0 + (drift[p + hold :] - 173.0) * (1 - np.exp(-after / 40.0))
    hr[p + hold :] = np.minimum(rec, 197.0)
    hr[p : p + hold] = hr[p - 1]
    return {
        "ts": (1_400_000_000 + clock).astype(np.int64),
        "hr": np.round(hr + rng.normal(0, 1.0, n)),
        "speed": 13.5 + rng.normal(0, 0.3, n),
        "alt": np.full(n, 100.0),
    }


def test_hr_that_relaxes_in_a_pause_is_no_lock(det):
    """A quiet, drifting HR around a pause looks steady like a lock, but it falls while the
    runner stands: the heart. Without the rule nearly every such run is called a cadence lock
    (masked or rejected)."""
    runs = [_drifting_run(np.random.default_rng(s)) for s in range(6)]
    pause = np.array([380])
    assert all(verdict(det, run, pause).faults == [] for run in runs)
    off = replace(det, lock_pause_drop_bpm=0.0, lock_max_white=np.inf)  # any HR a lock's
    assert sum("cadence_lock" in verdict(off, run, pause).faults for run in runs) >= 4
    # a simulated lock across a pause reads the cadence on both sides: still a lock
    rng = np.random.default_rng(2)
    run = physio_run(rng, pauses=((250, 300.0),))
    run["hr"][180:320] = np.round(run["cadence"][180:320] + rng.normal(0, 1.5, 140))
    v = verdict(det, run, np.array([250]))
    assert set(v.faults) & {"cadence_lock", "cadence_follow"}, v.reason


def test_hr_held_across_a_pause_is_masked(det):
    """A watch that holds the last HR across a pause: the repeated values right after it are
    a flatline (masked), a chance repeat of one or two values is not; no pause, no mask."""
    from hrpred.clean.analysis import sample_faults

    hr = np.array([150.0, 152, 151, 153, 152, 152, 152, 152, 152, 130, 133, 137, 140, 142])
    *_, flat = sample_faults(hr, 30.0, 220.0, det, np.array([5]))
    assert flat.tolist() == [False] * 5 + [True] * 4 + [False] * 5
    *_, flat = sample_faults(hr, 30.0, 220.0, det, None)
    assert not flat.any()
    hr[7:9] = [140.0, 138.0]  # held twice only
    assert not sample_faults(hr, 30.0, 220.0, det, np.array([5]))[3].any()


@pytest.mark.parametrize("seed", (0, 2, 4, 5, 7))
def test_a_noisy_cadence_far_above_the_runners_level_is_a_lock(det, seed):
    """A cadence read at a steady pace can be as noisy as the heart there: it fails the
    noise-ratio gate (lock_noise_ratio), but when it reads white about the speed and the
    runner's other runs say it sits far above them, the gate is lock_level_noise_ratio.
    With the old gate, without a level, below lock_level_min_bpm above it or unless white
    enough (quiet_max_white), it is no lock."""
    own = LevelModel(np.array([60.0, 8.125, 0.0]), 5)  # the runs' own HR-vs-speed line
    rng = np.random.default_rng(seed)
    run = physio_run(rng, pace_kmh=10.0, noise_bpm=1.5)
    run["hr"][200:240] = np.round(run["cadence"][200:240] + rng.normal(0, 1.4, 40))
    v = verdict(det, run, model=own)
    assert v.faults == ["cadence_follow"], v.reason
    start, end = span(v, "cadence_follow")
    assert start <= 200 and end >= 240 and end - start <= 40 + 4 * det.span_margin
    for cfg, model in (
        (replace(det, lock_level_noise_ratio=det.lock_noise_ratio), own),
        (det, NO_LEVEL),
        (replace(det, lock_level_min_bpm=40.0), own),
        (replace(det, quiet_max_white=0.0), own),
    ):
        assert not {"cadence_follow", "cadence_lock"} & set(verdict(cfg, run, model=model).faults)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_lock_on_a_low_day_is_told_by_its_signature(det, seed):
    """On a low day of the runner's (this run's heart 25 BPM below their other runs) a
    lock on the cadence reads nearer their level than the heart does, so the level test
    alone says it is the runner's own HR. The parts straddle the level and their signatures
    decide (`_sensor_over_heart`): the lock white about the speed, the heart wandering. When
    the heart's wander is within what a sensor reads (lock_max_white raised), the segment
    is no lock."""
    own = LevelModel(np.array([60.0, 8.125, 0.0]), 5)  # the runner's other runs' line
    rng = np.random.default_rng(seed)
    run = physio_run(rng, pace_kmh=12.0, level_bpm=-25.0)
    run["hr"][200:260] = np.round(run["cadence"][200:260] + rng.normal(0, 1.5, 60))
    v = verdict(det, run, model=own)
    assert v.faults == ["cadence_follow"], v.reason
    start, end = span(v, "cadence_follow")
    assert start <= 200 and end >= 260 and end - start <= 60 + 4 * det.span_margin
    lax = verdict(replace(det, lock_max_white=50.0), run, model=own)
    assert "above the rest" not in lax.reason  # (a quiet lock may still catch it)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_lock_below_the_heart_on_a_high_day(det, seed):
    """The mirror of the low day: the heart reads 20 BPM above the runner's other runs, a
    lock on their (low) cadence 12 below them, so the heart is further from the level than
    the lock and the level test alone says the heart is the fault. The signatures decide:
    the lock white about the speed, the heart wandering; not when the heart's wander is
    within what a sensor reads (lock_max_white raised)."""
    own = LevelModel(np.array([82.6, 8.125, 0.0]), 5)  # 172 BPM at 11 km/h
    rng = np.random.default_rng(seed)
    run = physio_run(rng, pace_kmh=11.0, level_bpm=42.6)  # the heart at 192
    cadence = np.clip(160 + 2.5 * (run["speed"] - 11.0), 150, 190)
    run["hr"][200:260] = np.round(cadence[200:260] + rng.normal(0, 1.5, 60))
    v = verdict(det, run, model=own)
    assert v.faults == ["cadence_follow"] and "below the rest" in v.reason, v.reason
    start, end = span(v, "cadence_follow")
    assert start <= 200 and end >= 260 and end - start <= 60 + 4 * det.span_margin
    lax = verdict(replace(det, lock_max_white=50.0), run, model=own)
    assert "below the rest" not in lax.reason


@pytest.mark.parametrize("seed", range(6))
def test_bin_medians_equal_numpy_median_per_bin(seed):
    from hrpred.clean.signal import bin_medians

    rng = np.random.default_rng(seed)
    n, n_bins = int(rng.integers(0, 60)), 7
    x = rng.normal(0.2, 0.1, n).round(int(rng.integers(1, 4)))  # ties, even and odd counts
    x[rng.random(n) < 0.05] = np.nan
    bins = rng.integers(-2, n_bins + 2, n)  # some outside every bin
    for min_count in (1, 2, 3):
        want = np.full(n_bins, np.nan)
        for i in range(n_bins):
            if (bins == i).sum() >= min_count:
                want[i] = np.median(x[bins == i])
        got = bin_medians(x, bins, n_bins, min_count)
        np.testing.assert_array_equal(got, want)  # NaN where numpy gives NaN, else bit-equal
