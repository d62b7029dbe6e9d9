"""Issue 26: the rules that tell real physiology from a sensor fault, each decided both ways.

Real runs showed the detectors reading physiology as faults: a slow warm-up as a drying strap,
a runner settling into a steady tempo as a cadence lock, a slower stretch as a partial offset,
a watch holding a steady value as a flatline, a runner's level of another year as a full
offset. Each test builds the physiology and the fault it resembles and checks that the rule is
what tells them apart (with the rule off, the physiology is called a fault).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from synthetic_clean import physio_run

from hrpred.clean.config import CleanConfig, DetectorConfig
from hrpred.clean.detector import LevelModel, Verdict, analyse, decide
from hrpred.clean.locks import switching_edges, white_ratio
from hrpred.clean.passes import valid_minutes
from hrpred.clean.population import deficits, local_levels, warmup_templates
from hrpred.clean.sensor import StartFit, strap_drying, template_curve

SEEDS = (0, 1, 2)
NO_LEVEL = LevelModel(np.array([np.nan, 0.0, 0.0]), 0)


@pytest.fixture(scope="module")
def det(config) -> DetectorConfig:
    return config(CleanConfig, "clean").detector


def verdict(det, run, model=NO_LEVEL) -> Verdict:
    an = analyse(run["ts"], run["hr"], run["speed"], run["alt"], 30.0, 220.0, det, None)
    return decide(an, run["hr"], model, False, 30.0, 220.0, det)


def elapsed(run) -> np.ndarray:
    return (run["ts"] - run["ts"][0]).astype(float)


# ------------------------------------------------------------------ cadence lock vs tempo


def _ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    """A stationary AR(1) series with standard deviation `sd` (a heart's slow wander)."""
    out = np.empty(n)
    out[0] = rng.normal(0, sd)
    innov = rng.normal(0, sd * np.sqrt(1 - phi * phi), n)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + innov[i]
    return out


def _tempo_run(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A steady run whose HR, a third in, climbs 15 BPM over a couple of minutes onto a
    higher, quieter plateau that wanders (a runner settling into a tempo effort the speed
    does not show, read by a watch that smooths): what real runs' lock calls were."""
    run = physio_run(rng, pace_kmh=11.0)
    n = run["hr"].size
    t = elapsed(run)
    k = 160
    rise = 15.0 * (1 - np.exp(-(t[k:] - t[k]) / 60.0))
    wander = _ar1(rng, n - k, 0.95, 2.0)
    run["hr"][k:] = np.round(run["hr_true"][k:] + rise + wander + rng.normal(0, 1.2, n - k))
    return run


@pytest.mark.parametrize("seed", SEEDS)
def test_a_steady_tempo_is_no_cadence_lock(det, seed):
    """A high, quiet tempo entered with the pace wanders like a heart: no lock. Without the
    signature (any high quiet part a lock's) it is called one."""
    run = _tempo_run(np.random.default_rng(seed))
    v = verdict(det, run)
    assert not {"cadence_lock", "cadence_follow"} & set(v.faults), v.reason
    any_quiet = replace(det, lock_max_white=np.inf)
    assert {"cadence_lock", "cadence_follow"} & set(verdict(any_quiet, run).faults)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_lock_switches_on_and_off(det, seed):
    """The same tempo run with the sensor locked on a fixed value mid-run (switching on and
    off whatever the pace): a lock."""
    rng = np.random.default_rng(seed)
    run = physio_run(rng, pace_kmh=10.0)
    run["hr"][220:300] = np.round(182 + rng.normal(0, 1.5, 80))
    v = verdict(det, run)
    assert "cadence_lock" in v.faults, v.reason


def test_white_ratio_tells_a_sensor_from_a_heart():
    rng = np.random.default_rng(3)
    speed = 11 + rng.normal(0, 0.3, 120)
    mask = np.ones(120, dtype=bool)
    sensor = 170 + 2.5 * (speed - 11) + rng.normal(0, 1.5, 120)
    heart = 170 + np.cumsum(rng.normal(0, 1.0, 120)) + rng.normal(0, 0.5, 120)
    assert white_ratio(sensor, speed, mask) < 1.5
    assert white_ratio(heart, speed, mask) > 5.0


def test_switching_edges_need_a_step_the_pace_does_not_explain(det):
    n = 200
    since = np.arange(n) * 8.0 + 600.0
    speed = np.full(n, 11.0)
    resid = np.random.default_rng(0).normal(0, 1.0, n)
    step = resid.copy()
    step[80:140] += 20.0  # a sensor switching on at 80 and off at 140
    assert switching_edges(step, speed, since, (80, 140), 1.0, 20.0, det)[0]
    glide = resid + np.interp(np.arange(n), [70, 90, 130, 150], [0, 20, 20, 0])
    assert not switching_edges(glide, speed, since, (80, 140), 1.0, 20.0, det)[0]
    surge = speed.copy()
    surge[80:140] += 5.0  # the pace changes at the same time: the heart may follow it
    ok, why = switching_edges(step, surge, since, (80, 140), 1.0, 20.0, det)
    assert not ok and "pace" in why
    warm = np.arange(n) * 1.0  # 80 s after the start: a warm-up
    assert not switching_edges(step, speed, warm, (80, 140), 1.0, 20.0, det)[0]


# ------------------------------------------------------------------ partial offset vs a walk


@pytest.mark.parametrize("seed", SEEDS)
def test_hr_gliding_down_and_back_is_no_partial_offset(det, seed):
    """HR 25 BPM lower for a long stretch, reached and left with the heart's own kinetics
    (a minute's time constant): not a sensor switching. With the edge tests off it is
    corrected as an offset (HR changed on a clean run)."""
    rng = np.random.default_rng(seed)
    run = physio_run(rng)
    t = elapsed(run)
    down = 1 - np.exp(-np.clip(t - t[200], 0, None) / 60.0)
    up = 1 - np.exp(-np.clip(t - t[350], 0, None) / 60.0)
    run["hr"] = np.round(run["hr"] - 25.0 * (down - up))
    v = verdict(det, run)
    assert v.offset_kind == "none", v.reason
    no_edges = replace(det, edge_fraction=0.0, edge_min_bpm=0.0, edge_sharpness=0.0)
    v = verdict(no_edges, run)
    assert v.offset_kind == "offset_partial", v.reason


@pytest.mark.parametrize("seed", SEEDS)
def test_a_sensor_offset_switching_on_is_corrected(det, seed):
    rng = np.random.default_rng(seed)
    run = physio_run(rng)
    run["hr"][220:] -= 30.0
    v = verdict(det, run)
    assert v.offset_kind == "offset_partial" and abs(v.offset_bpm - 30.0) < 4.0, v.reason


def test_an_offset_must_read_low_against_the_runners_level(det):
    """A low part that sits at the runner's own level (the high part is the odd one) is no
    offset when the runner's other workouts say so."""
    rng = np.random.default_rng(7)
    run = physio_run(rng)
    run["hr"][220:] -= 25.0
    low_is_normal = LevelModel(np.array([60.0 - 25.0, 130.0 / 16.0, 0.0]), 10)
    assert verdict(det, run, low_is_normal).offset_kind == "none"
    high_is_normal = LevelModel(np.array([60.0, 130.0 / 16.0, 0.0]), 10)
    assert verdict(det, run, high_is_normal).offset_kind == "offset_partial"


# ------------------------------------------------------------------ strap drying vs warm-up


def _slow_warmup(run, rng, depth: float, tau_s: float) -> None:
    t = elapsed(run)
    run["hr"] = np.round(
        run["hr_true"] * (1 - depth * np.exp(-t / tau_s)) + rng.normal(0, 2, t.size)
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_a_runners_habitual_slow_warmup_is_no_drying_strap(det, seed):
    """HR 30% short at the start, recovering with a 4-minute time constant, on a runner whose
    other runs warm up as slowly (their usual warm-up: another such run's profile): the
    runner's warm-up. For a runner whose warm-ups are quick (or unknown), a drying strap."""
    rng = np.random.default_rng(seed)
    run, other = physio_run(rng, n=500), physio_run(rng, n=500)
    _slow_warmup(run, rng, 0.3, 240.0)
    _slow_warmup(other, rng, 0.3, 240.0)
    an = analyse(other["ts"], other["hr"], other["speed"], other["alt"], 30.0, 220.0, det, None)
    usual = LevelModel(np.array([np.nan, 0.0, 0.0]), 0, an.warmup)
    assert "strap_drying" not in verdict(det, run, usual).faults
    quick = LevelModel(np.array([np.nan, 0.0, 0.0]), 0, np.zeros_like(an.warmup))
    assert "strap_drying" in verdict(det, run, quick).faults
    assert "strap_drying" in verdict(det, run).faults  # nothing known of the runner


def _start_fit(t: np.ndarray, short: np.ndarray, noise: float, rng) -> StartFit:
    expected = np.full(t.size, 160.0)
    resid = -short * expected + rng.normal(0, noise, t.size)
    return StartFit(t=t, t_run=t, resid=resid, expected=expected, noise=noise)


def test_drying_is_judged_beyond_the_runners_usual_warmup(det):
    """A start that holds 18% low for 4 minutes and then recovers: a drying strap for a runner
    whose warm-ups are quick, the runner's own habit for one whose usual warm-up is as slow."""
    rng = np.random.default_rng(1)
    t = np.arange(0.0, 960.0, 8.0)
    short = np.where(t < 240, 0.18, 0.18 * np.exp(-(t - 240) / 60.0))
    fit = _start_fit(t, short, 2.0, rng)
    quick = np.zeros(len(det.warmup_bins_s) - 1)
    assert strap_drying(fit, quick, det) is not None
    edges = np.asarray(det.warmup_bins_s)
    mid = 0.5 * (edges[:-1] + edges[1:])
    usual = np.interp(mid, t, short)
    assert strap_drying(fit, usual, det) is None


def test_template_curve_interpolates_and_ends_at_zero(det):
    edges = det.warmup_bins_s
    template = np.linspace(0.2, 0.02, len(edges) - 1)
    t = np.array([0.0, edges[-1], edges[-1] + 100.0])
    y = template_curve(t, template, edges)
    assert y[0] == pytest.approx(0.2) and y[1] == 0.0 and y[2] == 0.0


def test_warmup_templates_leave_the_run_out_and_shrink_to_the_population(det):
    users = np.array([1, 1, 1, 1, 2])
    bins = len(det.warmup_bins_s) - 1
    prof = np.zeros((5, bins))
    prof[:4, 0] = [0.1, 0.2, 0.3, 0.4]
    prof[4, 0] = 0.9
    prof[:, 1] = np.nan
    out = warmup_templates(users, prof, det)
    pop = float(np.quantile(prof[:, 0], det.warmup_quantile))
    k0 = det.warmup_prior_runs
    others = np.quantile([0.2, 0.3, 0.4], det.warmup_quantile)  # run 0 left out
    assert out[0, 0] == pytest.approx((3 * others + k0 * pop) / (3 + k0))
    assert out[4, 0] == pytest.approx(pop)  # the user's only run: the population's
    assert np.isnan(out[:, 1]).all()


# ------------------------------------------------------------------ full offset vs the year


def _stats(mean_hr: float, d: float = 10.0, t: float = 0.5, n: int = 100) -> np.ndarray:
    h = mean_hr
    return np.array([n, n * d, n * t, n * d * d, n * d * t, n * t * t, n * h, n * d * h, n * t * h])


def test_local_level_follows_the_runner_over_the_years(det):
    """A runner whose HR at a pace falls 24 BPM over the years: against their all-time level
    the fit years read far below (a full offset), against the level of the time they don't;
    the spread is their day-to-day scatter."""
    rng = np.random.default_rng(0)
    n = 60
    level = np.linspace(12.0, -12.0, n) + rng.normal(0, 2.0, n)
    stats = np.array([_stats(150.0 + x) for x in level])
    coef = np.tile([100.0, 5.0, 0.0], (n, 1))  # 100 + 5 x 10 = 150: the all-time level
    users = np.zeros(n, dtype=np.int64)
    starts = np.arange(n) * 7 * 86400.0
    local, spread = local_levels(users, starts, stats, np.ones(n, bool), coef, det)
    assert np.abs(deficits(stats, coef)).max() > 10.0
    assert np.abs(deficits(stats, local)[10:-10]).max() < 6.0
    assert 1.0 < spread[0] < 5.0 and np.all(spread == spread[0])
    few = local_levels(users[:3], starts[:3], stats[:3], np.ones(3, bool), coef[:3], det)[1]
    assert np.isnan(few).all()  # too few baselines for a spread


# ------------------------------------------------------------------ held values, masking


def test_a_watch_holding_a_steady_value_is_no_flatline(det):
    """20 identical values 3 s apart (a watch recording only changes): a steady heart. The
    same count 8 s apart (160 s) is a stuck reading."""
    from hrpred.clean.analysis import sample_faults

    rng = np.random.default_rng(0)
    hr = np.round(160 + rng.normal(0, 2, 120))
    hr[40:61] = 158.0
    dense = np.arange(120) * 3.0
    assert not sample_faults(hr, 30.0, 220.0, det, None, dense)[3].any()
    sparse = np.arange(120) * 8.0
    assert sample_faults(hr, 30.0, 220.0, det, None, sparse)[3][40:61].all()


def test_valid_minutes_leave_pauses_out():
    ts = np.array([0, 10, 20, 30, 630, 640, 650])  # a 10-minute pause after 30 s
    valid = np.ones(7, dtype=bool)
    assert valid_minutes(ts, valid) == pytest.approx(50.0 / 60.0)
    valid[:2] = False
    assert valid_minutes(ts, valid) == pytest.approx(30.0 / 60.0)


def _high_after_low_start(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A high-HR runner at tempo: the first 200 samples read 18 BPM lower and noisier (an
    easy start), then HR rises over 20 samples (a heart, no switch) and stays high and
    steady, a line in the speed plus white noise: by its shape alone, a lock from sample
    200. The runner's own level says which part is theirs."""
    run = physio_run(rng, pace_kmh=13.0)
    n = run["hr"].size
    up = np.clip((np.arange(n) - 190) / 20.0, 0.0, 1.0)  # the heart's own rise, no switch
    steady = 168.0 + 2.0 * (run["speed"] - 13.0)  # at tempo: a line in the speed
    noise = np.where(up < 1.0, rng.normal(0, 2.0, n), rng.normal(0, 1.0, n))
    run["hr"] = np.round(steady - 18.0 * (1.0 - up) + noise)
    return run


def _level_at(run: dict[str, np.ndarray], part: slice, k: int) -> LevelModel:
    """A level model of k other runs that expects the median HR of `part` (a flat level)."""
    return LevelModel(np.array([float(np.median(run["hr"][part])), 0.0, 0.0]), k)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_high_part_at_the_runners_own_level_is_no_lock(det, seed):
    """Real runs (issue 26): a high-HR runner's tempo after a low start was called a cadence
    lock over most of the run and the run rejected. With the runner's other runs expecting
    the high part's HR, it is no lock; expecting the low part's, it is one; with no other
    runs, shape alone calls a fault."""
    run = _high_after_low_start(np.random.default_rng(seed))
    locks = {"cadence_lock", "cadence_follow"}
    own = verdict(det, run, _level_at(run, slice(200, None), 20))
    assert not locks & set(own.faults), own.reason
    low = verdict(det, run, _level_at(run, slice(60, 200), 20))
    assert locks & set(low.faults), low.reason
    shape = verdict(det, run)
    assert shape.faults, shape.reason
