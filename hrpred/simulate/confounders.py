"""Fault-free confounders: real physiology that a sensor-fault detector can mistake for a fault.

Looking at real runs (../shared/real-dev, issue 26) showed what the simulated heart lacked and
the clean stage's detectors read as faults:
- `slow_warmup`: HR climbing to its steady level over 5-10 minutes (120 -> 160 BPM) where the
  simulated heart settles in one: read as a drying strap (or the low part of a partial
  offset). A runner's habit: some runners warm up slowly on most of their runs, each run a
  little differently;
- `tempo_drift`: HR settling a few minutes into the run onto a higher, quieter plateau (a
  runner working into a tempo effort; a watch smoothing a steady reading): read as a cadence
  lock (a high segment, steadier than the rest);
- `pace_dips`: HR dipping with every dip in pace, faster than the simulated kinetics: read as
  HR following the pace like a cadence reading.
High-HR runners at tempo (170-185 BPM) are already in the simulated population (young runners
near their maximum at threshold).

`add_confounders` adds them on top of whatever the physiology produced, at most one per
workout, whatever the sensor does later (a fault is injected on top; so the detectors' recall
is measured with them, their precision on the fault-free workouts that have them): the
physiology changes (`hr_physio`, and the sensor HR with it) and the truth's `confounder` column
says which a workout got (measurement only). The random
numbers come from their own streams (the runners' habits from (seed, 5), a chunk's draws
from (seed, 4, chunk)), so every other workout of the file is unchanged by them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hrpred.params import ParamError

CONFOUNDERS: tuple[str, ...] = ("slow_warmup", "tempo_drift", "pace_dips")
NONE = "none"


@dataclass(frozen=True)
class SlowWarmupConfig:
    """`confounders.slow_warmup` in params/simulate.yaml."""

    runners: float  # share of runners who warm up slowly ...
    runs: float  # ... on this share of their workouts
    depth: tuple[float, float]  # a runner's HR short of its target at the start (fraction)
    tau_s: tuple[float, float]  # ... fading with this time constant (s)
    spread: float  # a workout's depth and time constant: the runner's x U(1 -/+ spread)


@dataclass(frozen=True)
class TempoDriftConfig:
    """`confounders.tempo_drift` in params/simulate.yaml."""

    rate: float  # share of workouts
    start: tuple[float, float]  # where the drift starts (share of the workout)
    rise_bpm: tuple[float, float]  # HR rises by this much (BPM) ...
    tau_s: tuple[float, float]  # ... with this time constant (s) and stays
    noise_scale: tuple[float, float]  # sensor noise scaled by this on the plateau


@dataclass(frozen=True)
class PaceDipsConfig:
    """`confounders.pace_dips` in params/simulate.yaml."""

    rate: float  # share of workouts
    gain_bpm_per_kmh: tuple[float, float]  # HR follows the pace's fast changes by this
    window_s: float  # fast changes: speed minus its moving average over this window (s),
    clip_kmh: float  # ... within +-this (km/h; a stop is no 20 km/h dip)


@dataclass(frozen=True)
class ConfounderConfig:
    """`confounders` in params/simulate.yaml (simulate.confounders)."""

    slow_warmup: SlowWarmupConfig
    tempo_drift: TempoDriftConfig
    pace_dips: PaceDipsConfig

    def __post_init__(self) -> None:
        rates = (
            self.slow_warmup.runners,
            self.slow_warmup.runs,
            self.tempo_drift.rate,
            self.pace_dips.rate,
        )
        if not all(0.0 <= r <= 1.0 for r in rates):
            raise ParamError("params.yaml: simulate.confounders rates must lie in [0, 1]")
        if self.tempo_drift.rate + self.pace_dips.rate > 1.0:
            raise ParamError(
                "params.yaml: simulate.confounders tempo_drift.rate + pace_dips.rate must be <= 1"
            )
        ranges = [
            ("slow_warmup.depth", self.slow_warmup.depth),
            ("slow_warmup.tau_s", self.slow_warmup.tau_s),
            ("tempo_drift.start", self.tempo_drift.start),
            ("tempo_drift.rise_bpm", self.tempo_drift.rise_bpm),
            ("tempo_drift.tau_s", self.tempo_drift.tau_s),
            ("tempo_drift.noise_scale", self.tempo_drift.noise_scale),
            ("pace_dips.gain_bpm_per_kmh", self.pace_dips.gain_bpm_per_kmh),
        ]
        for name, (low, high) in ranges:
            if not 0.0 <= low <= high:
                raise ParamError(
                    f"params.yaml: simulate.confounders.{name} must be [low, high], 0 <= low"
                )
        if (
            not 0.0 <= self.slow_warmup.spread < 1.0
            or min(self.pace_dips.window_s, self.pace_dips.clip_kmh) <= 0
        ):
            raise ParamError(
                "params.yaml: simulate.confounders needs 0 <= slow_warmup.spread < 1 and "
                "pace_dips.window_s, clip_kmh > 0"
            )
        if self.tempo_drift.start[1] >= 1.0 or self.slow_warmup.tau_s[0] <= 0:
            raise ParamError(
                "params.yaml: simulate.confounders needs tempo_drift.start < 1 and "
                "slow_warmup.tau_s > 0"
            )


@dataclass(frozen=True)
class Habits:
    """Each runner's warm-up habit (arrays over all runners)."""

    slow: np.ndarray  # bool: warms up slowly
    depth: np.ndarray  # typical depth (fraction)
    tau_s: np.ndarray  # typical time constant (s)


def runner_habits(seed: int, n_users: int, cfg: SlowWarmupConfig) -> Habits:
    """The runners' warm-up habits, from (seed, 5) only: the same in every chunk."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 5]))
    slow = rng.random(n_users) < cfg.runners
    depth = rng.uniform(*cfg.depth, n_users)
    tau = rng.uniform(*cfg.tau_s, n_users)
    return Habits(slow, depth, tau)


def _moving_average(x: np.ndarray, t: np.ndarray, window_s: float) -> np.ndarray:
    """Trailing moving average of x over the last window_s seconds of t (per row)."""
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        c = np.concatenate(([0.0], np.cumsum(x[i])))
        j = np.searchsorted(t[i], t[i] - window_s, side="left")
        k = np.arange(1, x.shape[1] + 1)
        out[i] = (c[k] - c[j]) / (k - j)
    return out


def add_confounders(
    cfg: ConfounderConfig,
    seed: int,
    index: int,
    user: np.ndarray,
    n_users: int,
    t: np.ndarray,
    speed: np.ndarray,
    max_hr: np.ndarray,
    physio: np.ndarray,
    sensor: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(physiology, sensor HR, confounder name per workout) with the confounders added.

    `user` is each workout's runner index (of `n_users`), `t` the moving time (s, [B, n]), `speed` the true speed (km/h), `physio` the
    physiology's HR and `sensor` the recorded HR before faults (both [B, n], BPM), `max_hr`
    each workout's runner's maximum (the physiology stays within 3 BPM of it). Each
    confounder changes the physiology by the same amount in both arrays (the tempo plateau
    also quietens the sensor noise there).
    """
    b = physio.shape[0]
    slow_warmup, tempo_drift, pace_dips = CONFOUNDERS
    rng = np.random.default_rng(np.random.SeedSequence([seed, 4, index]))
    habits = runner_habits(seed, n_users, cfg.slow_warmup)
    draw = rng.random(b)  # one uniform per workout decides its confounder
    warm_draw = rng.random(b)
    sw, td, pd_ = cfg.slow_warmup, cfg.tempo_drift, cfg.pace_dips
    kinds = np.full(b, NONE, dtype=object)
    slow = habits.slow[user] & (warm_draw < sw.runs)
    kinds[slow] = slow_warmup
    other = ~slow
    kinds[other & (draw < td.rate)] = tempo_drift
    kinds[other & (draw >= td.rate) & (draw < td.rate + pd_.rate)] = pace_dips
    physio, sensor = physio.copy(), sensor.copy()
    noise = sensor - physio
    # Every workout draws the same numbers whatever its kind, so kinds do not shift streams.
    wobble = rng.uniform(1.0 - sw.spread, 1.0 + sw.spread, (b, 2))
    start = rng.uniform(*td.start, b)
    rise = rng.uniform(*td.rise_bpm, b)
    tau = rng.uniform(*td.tau_s, b)
    quiet = rng.uniform(*td.noise_scale, b)
    gain = rng.uniform(*pd_.gain_bpm_per_kmh, b)
    for i in np.flatnonzero(kinds != NONE):
        ti = t[i] - t[i, 0]
        if kinds[i] == slow_warmup:
            u = user[i]
            depth = min(habits.depth[u] * wobble[i, 0], 0.5)
            tau_w = habits.tau_s[u] * wobble[i, 1]
            delta = -depth * np.exp(-ti / tau_w) * physio[i]
        elif kinds[i] == tempo_drift:
            t0 = start[i] * ti[-1]
            on = ti >= t0
            delta = np.where(on, rise[i] * (1.0 - np.exp(-(ti - t0) / tau[i])), 0.0)
            noise[i] = np.where(on, noise[i] * quiet[i], noise[i])
        else:  # pace_dips
            fast = speed[i] - _moving_average(speed[i : i + 1], t[i : i + 1], pd_.window_s)[0]
            delta = gain[i] * np.clip(fast, -pd_.clip_kmh, pd_.clip_kmh)
        physio[i] = np.minimum(physio[i] + delta, max_hr[i] + 3.0)
        sensor[i] = physio[i] + noise[i]
    return physio, sensor, kinds.astype(str)
