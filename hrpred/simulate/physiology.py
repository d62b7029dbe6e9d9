"""Latent user physiology and the heart-rate response to exercise demand.

HR model (per workout, vectorised over a batch of workouts of equal length):
  intensity   = grade-adjusted speed / the user's reference speed for the sport
  hrr(t)      = hrr_at_threshold + hrr_per_rel_speed * (intensity - 1), soft-capped at 1
                (fraction of heart-rate reserve; ~24 BPM per m/s near threshold)
  target(t)   = rest + (max - rest) * hrr(t) * sport factor
  kinetics    : first order toward the target, tau_up when rising, tau_down (> tau_up)
                when falling, exact for the irregular time steps
  drift(t)    = drift rate * integral of relative intensity over elapsed time
  sensor      = physiology + white and slow noise (BPM)
  pauses      : the watch auto-pauses (nothing recorded); HR relaxes towards a standing
                target over the pause, then on towards the running target over the next step
  cadence(t)  = the runner's cadence at threshold + slope * (running-equivalent speed -
                threshold speed), clipped: what an optical sensor locked on the arm swing reads
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hrpred.simulate.config import SimConfig


@dataclass(frozen=True)
class SportModel:
    """How a sport maps to speed and effort, relative to the user's running threshold."""

    speed_factor: float  # typical speed / running threshold speed
    ref_factor: float  # speed at which the effort equals running threshold
    hr_factor: float  # HR-reserve fraction multiplier (less muscle mass on a bike)
    grade_mult: float  # how much more a slope costs than when running
    grade_slowdown: float  # fractional speed loss per unit grade uphill


SPORTS: dict[str, SportModel] = {
    "run": SportModel(1.0, 1.0, 1.0, 1.0, 1.2),
    "walk": SportModel(0.5, 1.0, 1.0, 1.0, 1.5),
    "bike": SportModel(2.3, 2.3, 0.92, 2.5, 5.0),
    "mountain bike": SportModel(1.5, 1.6, 0.95, 2.5, 5.0),
    "bike (transport)": SportModel(1.9, 2.3, 0.88, 2.5, 5.0),
}
DEFAULT_SPORT = SportModel(1.0, 1.0, 1.0, 1.0, 2.0)


@dataclass(frozen=True)
class Users:
    """Latent parameters, one array entry per user."""

    user_id: np.ndarray  # int64
    gender: np.ndarray  # str: male | female
    age: np.ndarray
    rest_hr: np.ndarray
    max_hr: np.ndarray
    threshold_speed_kmh: np.ndarray
    hrr_at_threshold: np.ndarray
    tau_up_s: np.ndarray
    tau_down_s: np.ndarray
    drift_bpm_per_h: np.ndarray
    home_lat: np.ndarray
    home_lon: np.ndarray
    cadence_spm: np.ndarray  # step cadence at threshold speed (steps/min)
    cadence_spm_per_kmh: np.ndarray  # cadence rise per km/h
    effort: np.ndarray  # habitual pace multiplier: some runners run every run harder


def make_users(rng: np.random.Generator, cfg: SimConfig) -> Users:
    """Draw every user's latent physiology from the configured ranges."""
    n = cfg.n_users
    female = rng.random(n) < cfg.female_rate
    age = np.round(rng.uniform(*cfg.age, n))
    rest = rng.uniform(*cfg.rest_hr, n)
    max_hr = 208.0 - 0.7 * age + rng.normal(0.0, cfg.max_hr_sd, n)
    lo, hi = cfg.threshold_speed_kmh
    # Fitness: bell-shaped inside the range; women ~8% slower at the same training level.
    thr = rng.normal((lo + hi) / 2, (hi - lo) / 5, n) * np.where(female, 0.92, 1.0)
    thr = np.clip(thr, lo, hi)
    fit = (thr - (lo + hi) / 2) / ((hi - lo) / 5)  # fitness in sds of the bell
    tau_up = rng.uniform(*cfg.tau_up_s, n)
    tau_down = np.minimum(tau_up * rng.uniform(*cfg.tau_down_ratio, n), cfg.tau_max_s)
    tau_down = np.maximum(tau_down, tau_up + 1.0)
    us = rng.random(n) < 0.2  # a fifth of the users in North America, the rest in Europe
    home_lat = np.where(us, rng.uniform(30, 48, n), rng.uniform(36, 62, n))
    home_lon = np.where(us, rng.uniform(-122, -72, n), rng.uniform(-9, 30, n))
    ids = 1_000_000 + rng.choice(50_000_000, size=n, replace=False)
    # Cadence and effort from their own streams, so the draws above stay what they were.
    cadence_rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 4]))
    effort_rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 5]))
    return Users(
        user_id=ids.astype(np.int64),
        gender=np.where(female, "female", "male"),
        age=age,
        rest_hr=rest,
        max_hr=max_hr,
        threshold_speed_kmh=thr,
        hrr_at_threshold=rng.uniform(*cfg.hrr_at_threshold, n),
        tau_up_s=tau_up,
        tau_down_s=tau_down,
        drift_bpm_per_h=rng.uniform(*cfg.drift_bpm_per_h, n),
        home_lat=home_lat,
        home_lon=home_lon,
        cadence_spm=cadence_rng.uniform(*cfg.cadence_spm, n),
        cadence_spm_per_kmh=cadence_rng.uniform(*cfg.cadence_spm_per_kmh, n),
        # fitter runners habitually run closer to their threshold (as on real runs)
        effort=np.exp(effort_rng.normal(0.0, cfg.effort_sd, n) + cfg.effort_per_fitness * fit),
    )


def cadence(
    run_speed_kmh: np.ndarray,
    threshold_kmh: np.ndarray,
    cadence_spm: np.ndarray,
    per_kmh: np.ndarray,
    clip_spm: tuple[float, float],
) -> np.ndarray:
    """Step cadence (steps/min) [B, n] at running-equivalent speeds [B, n]: each runner's
    line through (threshold speed, cadence at threshold) with slope `per_kmh`, clipped."""
    line = cadence_spm[:, None] + per_kmh[:, None] * (run_speed_kmh - threshold_kmh[:, None])
    return np.clip(line, *clip_spm)


def effort_fraction(
    speed_kmh: np.ndarray,
    grade: np.ndarray,
    ref_speed_kmh: np.ndarray,
    hrr_at_threshold: np.ndarray,
    cfg: SimConfig,
    grade_mult: np.ndarray,
) -> np.ndarray:
    """Fraction of heart-rate reserve demanded at each step, [B, n] (soft-capped at 1)."""
    cost = np.where(grade > 0, cfg.grade_cost_up, cfg.grade_cost_down) * grade_mult[:, None]
    equivalent = speed_kmh * np.maximum(1.0 + cost * grade, 0.3)
    rel = equivalent / ref_speed_kmh[:, None]
    hrr = hrr_at_threshold[:, None] + cfg.hrr_per_rel_speed * (rel - 1.0)
    knee = 0.9  # smooth approach to HRmax instead of a hard clip
    hrr = np.where(hrr > knee, knee + (1 - knee) * np.tanh((hrr - knee) / (1 - knee)), hrr)
    return np.maximum(hrr, 0.05)


def first_order_kinetics(
    target: np.ndarray,
    dt: np.ndarray,
    hr0: np.ndarray,
    tau_up: np.ndarray,
    tau_down: np.ndarray,
) -> np.ndarray:
    """HR relaxing toward `target` [B, n] over steps `dt` [B, n] (dt[:, 0] unused).

    Exact for a target held constant over each step; rising uses tau_up, falling tau_down.
    """
    a_up = np.exp(-dt / tau_up[:, None])
    a_down = np.exp(-dt / tau_down[:, None])
    hr = np.empty_like(target)
    prev = hr0.astype(np.float64)
    hr[:, 0] = prev
    for i in range(1, target.shape[1]):  # recursive filter: loop over time, batch in numpy
        tgt = target[:, i]
        prev = tgt + (prev - tgt) * np.where(tgt > prev, a_up[:, i], a_down[:, i])
        hr[:, i] = prev
    return hr


def paused_kinetics(
    target: np.ndarray,
    dt: np.ndarray,
    hr0: np.ndarray,
    tau_up: np.ndarray,
    tau_down: np.ndarray,
    pauses: list[list[tuple[int, float]]],
    standing: np.ndarray,
) -> np.ndarray:
    """`first_order_kinetics` with pauses: `pauses[b]` lists (step, seconds) of workout b,
    the step being the first sample after the pause. Over a pause HR relaxes towards
    `standing[b]`, then over `dt[b, step]` towards `target[b, step]` as before.

    Each pause is an extra sample on the time grid, dropped afterwards; workouts with fewer
    pauses pad at the end (zero steps after their last sample), so they come out the same
    as without pauses.
    """
    extra = max((len(p) for p in pauses), default=0)
    if extra == 0:
        return first_order_kinetics(target, dt, hr0, tau_up, tau_down)
    b, n = target.shape
    width = n + extra
    tgt = np.repeat(target[:, -1:], width, axis=1)
    step = np.zeros((b, width))
    columns = np.empty((b, n), dtype=np.int64)
    for i in range(b):
        steps = sorted(p for p, _ in pauses[i])
        col = np.arange(n) + np.searchsorted(steps, np.arange(n), side="right")
        columns[i] = col
        tgt[i, col], step[i, col] = target[i], dt[i]
        for j, (p, seconds) in enumerate(sorted(pauses[i])):
            tgt[i, p + j], step[i, p + j] = standing[i], seconds  # the column before sample p
    hr = first_order_kinetics(tgt, step, hr0, tau_up, tau_down)
    return np.take_along_axis(hr, columns, axis=1)


def cardiac_drift(
    dt: np.ndarray, relative_effort: np.ndarray, rate_bpm_h: np.ndarray
) -> np.ndarray:
    """Slow HR rise growing with elapsed time and effort, [B, n] in BPM."""
    load = np.cumsum(dt * np.clip(relative_effort, 0.0, 1.3), axis=1)
    return rate_bpm_h[:, None] * load / 3600.0


def smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int], sd: float, span: int
) -> np.ndarray:
    """Slowly varying noise with standard deviation `sd`, correlated over ~`span` steps.

    White noise smoothed by a moving sum of width 2*span (cumsum differences: O(B*n)).
    """
    if sd <= 0:
        return np.zeros(shape)
    width = max(2 * span, 1)
    white = rng.standard_normal((shape[0], shape[1] + width))
    csum = np.cumsum(white, axis=1)
    return (sd / np.sqrt(width)) * (csum[:, width:] - csum[:, :-width])
