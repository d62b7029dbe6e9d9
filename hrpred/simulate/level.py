"""A runner's HR level over their active span: slow drift and sudden changes, as real runners.

Real runners' HR at a given effort moves: a trend over months (fitness; on the real dev set up
to -30 BPM over two and a half years, -5 to -12 BPM a year), a slow wander, training blocks that move it 10-15 BPM in
about two months, long breaks (no runs for weeks, then HR higher and fading back) and new
sensors (watch or strap: the level jumps by a typical 8 BPM, with tails to +-25, and the noise
changes). Each user draws a trend, a wander (two sinusoids with random phases), at most one
training block, at most one long break and at most one device change; the trend is a rate per
year, so a runner with few runs over a few months barely moves; every workout gets the
level shift (BPM, added to the HR the effort asks for) and the sensor-noise scale in force on
its day. A long break also moves the runner's later workouts by its length (the runner did
not run during it). The sudden changes (a device change, the return from a break) are the
level changes the truth records (`change_day`: the day of the latest one at or before each
workout; measurement only). Drawn from their own random stream, so the other plan choices do
not move.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hrpred.params import ParamError


@dataclass(frozen=True)
class LevelConfig:
    """`simulate.level` (params/simulate.yaml)."""

    trend_bpm_per_year: tuple[float, float]  # steady change per year (negative: fitter)
    wander_bpm: float  # sd of the slow wander (BPM)
    wander_days: float  # typical period of the wander (days)
    block_rate: float  # share of users with one training block ...
    block_bpm: tuple[float, float]  # ... lowering the level by this much (BPM) ...
    block_days: float  # ... over this many days (then it stays)
    detrain_rate: float  # share of users with one long break ...
    break_days: tuple[float, float]  # ... without runs for this long (days) ...
    detrain_bpm: tuple[float, float]  # ... coming back this much higher (BPM) ...
    detrain_recovery_days: float  # ... fading with this time constant (days)
    device_change_rate: float  # share of users who change HR sensor once ...
    device_offset_bpm: float  # ... shifting the level by sd x a Student t (BPM) ...
    device_offset_df: float  # ... with these degrees of freedom (heavy tails) ...
    device_offset_max_bpm: float  # ... clipped to +- this (BPM) ...
    device_noise_scale: tuple[float, float]  # ... and scaling the sensor noise (uniform)

    def __post_init__(self) -> None:
        for name in (
            "trend_bpm_per_year",
            "block_bpm",
            "break_days",
            "detrain_bpm",
            "device_noise_scale",
        ):
            low, high = getattr(self, name)
            if low > high:
                raise ParamError(f"params/simulate.yaml: level.{name} must be [low, high]")
        rates = (self.block_rate, self.detrain_rate, self.device_change_rate)
        if not all(0 <= r <= 1 for r in rates):
            raise ParamError("params/simulate.yaml: level rates must lie in [0, 1]")
        sds = (self.wander_bpm, self.device_offset_bpm, self.device_offset_max_bpm)
        if min(sds) < 0 or self.device_noise_scale[0] <= 0 or self.break_days[0] < 0:
            raise ParamError("params/simulate.yaml: level sds, breaks must be >= 0, scales > 0")
        days = (self.wander_days, self.detrain_recovery_days, self.block_days)
        if min(days) <= 0 or self.device_offset_df <= 0:
            raise ParamError("params/simulate.yaml: level day constants and df must be > 0")


@dataclass(frozen=True)
class LevelPath:
    """Per workout: its day in the user's span (breaks included), level shift (BPM), sensor
    noise scale, and the day and size (BPM) of the latest sudden level change at or before it
    (nan and 0: none)."""

    day: np.ndarray
    level: np.ndarray
    noise_scale: np.ndarray
    change_day: np.ndarray
    change_bpm: np.ndarray


def workout_levels(
    rng: np.random.Generator,
    cfg: LevelConfig,
    user: np.ndarray,
    days: np.ndarray,
    span_days: np.ndarray,
) -> LevelPath:
    """The level path of each workout. `user` is each workout's user index, `days` its day in
    the user's active span (before breaks) and `span_days` the span of each user."""
    n_users = span_days.size
    trend = rng.uniform(*cfg.trend_bpm_per_year, n_users)
    periods = cfg.wander_days * rng.uniform(0.6, 1.6, (n_users, 2))
    phases = rng.uniform(0, 2 * np.pi, (n_users, 2))
    block = rng.random(n_users) < cfg.block_rate
    block_day = rng.random(n_users) * span_days
    block_drop = rng.uniform(*cfg.block_bpm, n_users)
    detrain = rng.random(n_users) < cfg.detrain_rate
    break_day = rng.random(n_users) * span_days
    break_len = rng.uniform(*cfg.break_days, n_users)
    detrain_rise = rng.uniform(*cfg.detrain_bpm, n_users)
    device = rng.random(n_users) < cfg.device_change_rate
    device_day = rng.random(n_users) * span_days
    device_offset = np.clip(
        cfg.device_offset_bpm * rng.standard_t(cfg.device_offset_df, n_users),
        -cfg.device_offset_max_bpm,
        cfg.device_offset_max_bpm,
    )
    device_scale = rng.uniform(*cfg.device_noise_scale, n_users)

    # a long break: the runner's later workouts come after it (the day moves by its length)
    after_break = detrain[user] & (days >= break_day[user])
    day = days + np.where(after_break, break_len[user], 0.0)
    # two unit-variance sinusoids summed: sd of the wander is wander_bpm
    waves = np.sin(2 * np.pi * day[:, None] / periods[user] + phases[user]).sum(axis=1)
    level = trend[user] * day / 365.0 + cfg.wander_bpm * waves
    into_block = np.clip((days - block_day[user]) / cfg.block_days, 0.0, 1.0)
    level -= np.where(block[user], block_drop[user] * into_block, 0.0)
    back = day - (break_day[user] + break_len[user])  # days since the return
    level += np.where(
        after_break,
        detrain_rise[user] * np.exp(-np.maximum(back, 0) / cfg.detrain_recovery_days),
        0.0,
    )
    changed = device[user] & (days >= device_day[user])
    level += np.where(changed, device_offset[user], 0.0)
    scale = np.where(changed, device_scale[user], 1.0)
    # the latest sudden change (return from the break, device change) so far: day and size
    moved = detrain & (device_day >= break_day)  # a device change after the break moves too
    device_at = np.where(changed, (device_day + np.where(moved, break_len, 0.0))[user], -1.0)
    break_at = np.where(after_break, (break_day + break_len)[user], -1.0)
    latest = np.maximum(device_at, break_at)
    size = np.where(device_at >= break_at, device_offset[user], detrain_rise[user])
    return LevelPath(
        day, level, scale, np.where(latest >= 0, latest, np.nan), np.where(latest >= 0, size, 0.0)
    )
