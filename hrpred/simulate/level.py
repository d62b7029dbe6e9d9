"""A runner's slow change of HR level over their active span (what makes recent history count).

Real runners' HR at a given effort drifts over months: fitness gains or losses, a detraining
break (HR higher for weeks, then back), a new sensor (another offset and noise level). Each
user draws a trend over their active span, a slow wander (two sinusoids with random phases),
at most one detraining break and at most one device change; every workout then gets the
level shift (BPM, added to the HR the effort asks for) and the sensor-noise scale in force on
its day. Drawn from their own random stream, so the other plan choices do not move.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hrpred.params import ParamError


@dataclass(frozen=True)
class LevelConfig:
    """`level` in params/simulate.yaml (simulate.level)."""

    trend_bpm: tuple[float, float]  # total change over the active span (negative: fitter)
    wander_bpm: float  # sd of the slow wander (BPM)
    wander_days: float  # typical period of the wander (days)
    detrain_rate: float  # share of users with one detraining break
    detrain_bpm: tuple[float, float]  # HR rise at the break (BPM)
    detrain_recovery_days: float  # the rise fades with this time constant (days)
    device_change_rate: float  # share of users who change HR sensor once
    device_offset_bpm: float  # sd of the new sensor's offset (BPM)
    device_noise_scale: tuple[float, float]  # new sensor's noise scale (uniform)

    def __post_init__(self) -> None:
        for name in ("trend_bpm", "detrain_bpm", "device_noise_scale"):
            low, high = getattr(self, name)
            if low > high:
                raise ParamError(f"params.yaml: simulate.level.{name} must be [low, high]")
        if not (0 <= self.detrain_rate <= 1 and 0 <= self.device_change_rate <= 1):
            raise ParamError("params.yaml: simulate.level rates must lie in [0, 1]")
        if min(self.wander_bpm, self.device_offset_bpm) < 0 or self.device_noise_scale[0] <= 0:
            raise ParamError("params.yaml: simulate.level sds must be >= 0 and scales > 0")
        if self.wander_days <= 0 or self.detrain_recovery_days <= 0:
            raise ParamError("params.yaml: simulate.level day constants must be > 0")


def workout_levels(
    rng: np.random.Generator,
    cfg: LevelConfig,
    user: np.ndarray,
    days: np.ndarray,
    span_days: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(level shift in BPM, sensor-noise scale) of each workout.

    `user` is each workout's user index, `days` its day in the user's active span and
    `span_days` the span of each user.
    """
    n_users = span_days.size
    trend = rng.uniform(*cfg.trend_bpm, n_users)
    periods = cfg.wander_days * rng.uniform(0.6, 1.6, (n_users, 2))
    phases = rng.uniform(0, 2 * np.pi, (n_users, 2))
    detrain = rng.random(n_users) < cfg.detrain_rate
    detrain_day = rng.random(n_users) * span_days
    detrain_rise = rng.uniform(*cfg.detrain_bpm, n_users)
    device = rng.random(n_users) < cfg.device_change_rate
    device_day = rng.random(n_users) * span_days
    device_offset = rng.normal(0.0, cfg.device_offset_bpm, n_users)
    device_scale = rng.uniform(*cfg.device_noise_scale, n_users)

    frac = days / np.maximum(span_days[user], 1.0)
    # two unit-variance sinusoids summed: sd of the wander is wander_bpm
    waves = np.sin(2 * np.pi * days[:, None] / periods[user] + phases[user]).sum(axis=1)
    level = trend[user] * frac + cfg.wander_bpm * waves
    since = days - detrain_day[user]
    level += np.where(
        detrain[user] & (since >= 0),
        detrain_rise[user] * np.exp(-np.maximum(since, 0) / cfg.detrain_recovery_days),
        0.0,
    )
    changed = device[user] & (days >= device_day[user])
    level += np.where(changed, device_offset[user], 0.0)
    scale = np.where(changed, device_scale[user], 1.0)
    return level, scale
