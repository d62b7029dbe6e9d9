"""Simulator settings: one frozen dataclass for the `simulate:` params section.

Fields carry types, not defaults: the params files are the one home of every value (seed,
sizes, paths and workers in params.yaml `simulate:`, the world in params/simulate.yaml), and
`load_config(SimConfig, "simulate")` is the one way to build it.
"""

from __future__ import annotations

from dataclasses import dataclass

from hrpred.params import ParamError
from hrpred.simulate.calibration import CalibrationTargets
from hrpred.simulate.confounders import ConfounderConfig
from hrpred.simulate.level import LevelConfig

# Faults of the HR channel only (the clean stage's detector targets).
HR_FAULTS: tuple[str, ...] = (
    "offset_full",
    "offset_partial",
    "dropout",
    "flatline",
    "spike",
    "cadence_lock",
    "slow_lock",
    "cadence_follow",
    "whole_run_lock",
    "stuck_low",
    "lagging_noisy",
    "low_dropout",
    "strap_drying",
)
# Faults of the recording itself (positions, clock, arrays, the line).
RECORDING_FAULTS: tuple[str, ...] = (
    "gps_spike",
    "timestamp_gap",
    "timestamp_nonmonotonic",
    "length_mismatch",
    "altitude_unrealistic",
    "malformed_line",
)
FAULTS: tuple[str, ...] = (*HR_FAULTS, *RECORDING_FAULTS)  # every fault the simulator injects
ARCHETYPES: tuple[str, ...] = ("easy", "steady", "progressive", "intervals", "hilly")
TERRAINS: tuple[str, ...] = ("flat", "rolling", "hilly")
# [low, high] ranges of the simulator's draws.
RANGES: tuple[str, ...] = (
    "age",
    "rest_hr",
    "threshold_speed_kmh",
    "hrr_at_threshold",
    "tau_up_s",
    "tau_down_ratio",
    "drift_bpm_per_h",
    "offset_bpm",
    "cadence_spm",
    "cadence_spm_per_kmh",
    "cadence_clip_spm",
)


@dataclass(frozen=True)
class PauseConfig:
    """`pauses` in params/simulate.yaml: stops with the watch auto-paused (nothing recorded)."""

    rate: float  # share of workouts with pauses
    count: tuple[int, int]  # pauses per such workout (uniform, inclusive)
    pause_min_s: float  # shortest pause (s)
    pause_max_s: float  # longest pause (s); lengths are log-uniform in between
    standing_hrr: float  # HR-reserve fraction the HR relaxes towards while paused

    def __post_init__(self) -> None:
        if not 0 <= self.rate <= 1:
            raise ParamError("params.yaml: simulate.pauses.rate must lie in [0, 1]")
        if not 1 <= self.count[0] <= self.count[1]:
            raise ParamError("params.yaml: simulate.pauses.count must be [low, high] with low >= 1")
        if not 1 <= self.pause_min_s <= self.pause_max_s:
            raise ParamError(
                "params.yaml: simulate.pauses needs 1 <= pause_min_s <= pause_max_s (s)"
            )
        if not 0 <= self.standing_hrr < 1:
            raise ParamError("params.yaml: simulate.pauses.standing_hrr must lie in [0, 1)")


@dataclass(frozen=True)
class SimConfig:
    """Every knob of the simulator (values and units: params.yaml `simulate:` and
    params/simulate.yaml)."""

    seed: int
    n_users: int
    n_workouts: int
    out: str  # FitRec lines, relative to the repository root
    truth: str  # ground-truth Parquet, relative to the repository root
    points: int
    chunk_size: int
    workers: int  # 0 = all cores
    step_s_mean: float
    step_s_spread: float
    step_s_jitter: float  # coefficient of variation of each step around the typical one
    user_workouts_sigma: float
    female_rate: float
    age: tuple[float, float]
    max_hr_sd: float
    rest_hr: tuple[float, float]
    threshold_speed_kmh: tuple[float, float]
    hrr_at_threshold: tuple[float, float]
    hrr_per_rel_speed: float
    effort_sd: float  # sd of a runner's habitual pace relative to the archetypes' (lognormal)
    effort_per_fitness: float  # ... plus this much per sd of fitness (log multiplier)
    grade_cost_up: float
    grade_cost_down: float
    tau_up_s: tuple[float, float]
    tau_down_ratio: tuple[float, float]
    tau_max_s: float
    drift_bpm_per_h: tuple[float, float]
    day_to_day_bpm: float
    sensor_noise_bpm: float
    native_speed_rate: float
    stop_rate: float
    offset_bpm: tuple[float, float]
    cadence_spm: tuple[float, float]  # a runner's cadence at threshold speed (uniform)
    cadence_spm_per_kmh: tuple[float, float]  # ... and its rise per km/h (uniform)
    cadence_clip_spm: tuple[float, float]  # cadence kept within (steps/min)
    pauses: PauseConfig  # auto-paused stops (clock jumps, HR recovers)
    level: LevelConfig  # slow change of each runner's HR level (simulate/level.py)
    confounders: ConfounderConfig  # fault-free physiology like a fault (confounders.py)
    sports: dict[str, float]
    archetypes: dict[str, float]
    terrains: dict[str, float]
    faults: dict[str, float]
    calibration: CalibrationTargets  # the real dev set's figures (measurement only)

    def __post_init__(self) -> None:
        if self.n_users < 1 or self.n_workouts < self.n_users:
            raise ParamError("params.yaml: simulate needs 1 <= n_users <= n_workouts")
        if self.points < 50:
            raise ParamError("params.yaml: simulate.points must be >= 50")
        if self.chunk_size < 1:
            raise ParamError("params.yaml: simulate.chunk_size must be >= 1")
        for name in RANGES:
            low, high = getattr(self, name)
            if low > high:
                raise ParamError(
                    f"params.yaml: simulate.{name} must be [low, high], got [{low}, {high}]"
                )
        for name in ("sports", "archetypes", "terrains", "faults"):
            weights = getattr(self, name)
            if any(v < 0 for v in weights.values()):
                raise ParamError(f"params.yaml: simulate.{name} weights must be >= 0")
            if name != "faults" and sum(weights.values()) <= 0:
                raise ParamError(f"params.yaml: simulate.{name} weights must sum to > 0")
        unknown = set(self.faults) - set(FAULTS)
        if unknown:
            raise ParamError(f"params.yaml: simulate.faults has unknown types {sorted(unknown)}")
        if sum(self.faults.values()) >= 1.0:
            raise ParamError("params.yaml: simulate.faults rates must sum to < 1")
        for name, known in (("archetypes", ARCHETYPES), ("terrains", TERRAINS)):
            bad = set(getattr(self, name)) - set(known)
            if bad:
                raise ParamError(f"params.yaml: simulate.{name} has unknown names {sorted(bad)}")
