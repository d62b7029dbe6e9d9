"""The global plan: which user, sport, archetype, terrain and fault each line gets.

Drawn once from (seed, 0) with small per-line arrays, so chunks can be simulated
independently (and in parallel) while users stay consistent across the whole file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hrpred.simulate.config import SimConfig
from hrpred.simulate.level import workout_levels
from hrpred.simulate.physiology import Users, make_users

EPOCH_FIRST = 1_306_886_400  # 2011-06-01 UTC
EPOCH_LAST = 1_420_070_400  # 2015-01-01 UTC


@dataclass(frozen=True)
class Plan:
    """Per-line choices (arrays of length n_workouts) plus the users."""

    users: Users
    user: np.ndarray  # user index of each line
    n_user_workouts: np.ndarray  # per user
    workout_id: np.ndarray
    start_time: np.ndarray  # Unix s
    sport: np.ndarray  # str
    archetype: np.ndarray  # str
    terrain: np.ndarray  # str
    fault: np.ndarray  # str
    native_speed: np.ndarray  # bool
    level_bpm: np.ndarray  # the user's HR level shift on that day (BPM; simulate/level.py)
    noise_scale: np.ndarray  # sensor-noise scale on that day (device changes)
    day: np.ndarray  # the workout's day in the user's active span (breaks included)
    change_day: np.ndarray  # day of the user's latest sudden level change so far (nan: none)
    change_bpm: np.ndarray  # ... and its size (BPM; 0: none): measurement only
    n_pauses: np.ndarray  # auto-paused stops in the workout (0 for most)


def _choice(rng: np.random.Generator, mix: dict[str, float], size: int) -> np.ndarray:
    names = list(mix)
    weights = np.array([mix[k] for k in names], dtype=np.float64)
    return np.array(names, dtype=object)[
        rng.choice(len(names), size=size, p=weights / weights.sum())
    ]


def make_plan(cfg: SimConfig) -> Plan:
    """Draw users and every line's categorical choices from `cfg.seed`."""
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0]))
    users = make_users(rng, cfg)
    n, n_users = cfg.n_workouts, cfg.n_users
    # Long-tailed workouts per user: every user has one, the rest by lognormal weights.
    weights = rng.lognormal(0.0, cfg.user_workouts_sigma, n_users)
    counts = 1 + rng.multinomial(n - n_users, weights / weights.sum())
    user = rng.permutation(np.repeat(np.arange(n_users), counts))

    # Each user is active for a while; workouts fall at random days and times in it.
    first = rng.uniform(EPOCH_FIRST, EPOCH_LAST - 400 * 86400, n_users)
    span_days = np.minimum(counts * rng.uniform(2, 8, n_users), 1200)
    day = np.floor(rng.random(n) * span_days[user])
    # Level drift from its own stream: the choices below stay as they were without it. A long
    # break moves the runner's later days (`path.day`).
    level_rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 2]))
    path = workout_levels(level_rng, cfg.level, user, day, span_days)
    start = (first[user] // 86400 + np.floor(path.day)) * 86400 + rng.uniform(
        6 * 3600, 20 * 3600, n
    )
    start = start.astype(np.int64)
    # Ids grow with time, like Endomondo's.
    ids = np.empty(n, dtype=np.int64)
    ids[np.argsort(start, kind="stable")] = 200_000_000 + np.cumsum(rng.integers(1, 3000, n))

    sport = _choice(rng, cfg.sports, n)
    archetype = _choice(rng, cfg.archetypes, n)
    terrain = _choice(rng, cfg.terrains, n)
    terrain[archetype == "hilly"] = "hilly"
    faults = {"none": max(1.0 - sum(cfg.faults.values()), 0.0), **cfg.faults}
    fault = _choice(rng, faults, n)
    native = rng.random(n) < cfg.native_speed_rate
    # Pauses from their own stream too (where and how long: per chunk, in generate).
    pause_rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 3]))
    has_pause = pause_rng.random(n) < cfg.pauses.rate
    n_pauses = np.where(has_pause, pause_rng.integers(*cfg.pauses.count, n, endpoint=True), 0)
    return Plan(
        users=users,
        user=user,
        n_user_workouts=counts,
        workout_id=ids,
        start_time=start,
        sport=sport,
        archetype=archetype,
        terrain=terrain,
        fault=fault,
        native_speed=native,
        level_bpm=path.level,
        noise_scale=path.noise_scale,
        day=path.day,
        change_day=path.change_day,
        change_bpm=path.change_bpm,
        n_pauses=n_pauses.astype(np.int64),
    )
