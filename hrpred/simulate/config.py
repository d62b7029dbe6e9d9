"""Simulator settings: one frozen dataclass built from the `simulate:` params section."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hrpred.params import ParamError, Params

FAULTS: tuple[str, ...] = (
    "offset_full",
    "offset_partial",
    "dropout",
    "flatline",
    "spike",
    "cadence_lock",
    "gps_spike",
    "timestamp_gap",
    "timestamp_nonmonotonic",
    "length_mismatch",
    "altitude_unrealistic",
    "malformed_line",
)
HR_FAULTS: tuple[str, ...] = FAULTS[:6]
ARCHETYPES: tuple[str, ...] = ("easy", "steady", "progressive", "intervals", "hilly")
TERRAINS: tuple[str, ...] = ("flat", "rolling", "hilly")


def _mix(
    params: Params, key: str, default: dict[str, float], allow_zero: bool = False
) -> dict[str, float]:
    raw = params.raw(key, default)
    if not isinstance(raw, dict) or not raw:
        raise ParamError(f"params.yaml: simulate.{key} must be a mapping name -> weight")
    try:
        mix = {str(k): float(v) for k, v in raw.items()}
    except (TypeError, ValueError):
        raise ParamError(f"params.yaml: simulate.{key} weights must be numbers") from None
    if any(v < 0 for v in mix.values()) or (sum(mix.values()) <= 0 and not allow_zero):
        raise ParamError(f"params.yaml: simulate.{key} weights must be >= 0, sum > 0")
    return mix


def _range(params: Params, key: str, default: list[float]) -> tuple[float, float]:
    lo_hi = params.floats(key, default)
    if len(lo_hi) != 2 or lo_hi[0] > lo_hi[1]:
        raise ParamError(f"params.yaml: simulate.{key} must be [low, high], got {lo_hi}")
    return lo_hi[0], lo_hi[1]


@dataclass(frozen=True)
class SimConfig:
    """Every knob of the simulator; defaults mirror params.yaml."""

    seed: int = 42
    n_users: int = 150
    n_workouts: int = 3000
    points: int = 500
    chunk_size: int = 250
    workers: int = 1
    step_s_mean: float = 8.4
    step_s_spread: float = 0.25
    user_workouts_sigma: float = 1.3
    female_rate: float = 0.25
    age: tuple[float, float] = (18.0, 65.0)
    rest_hr: tuple[float, float] = (50.0, 70.0)
    max_hr_sd: float = 5.0
    threshold_speed_kmh: tuple[float, float] = (9.5, 16.0)
    hrr_at_threshold: tuple[float, float] = (0.72, 0.92)
    hrr_per_rel_speed: float = 0.65
    grade_cost_up: float = 3.5
    grade_cost_down: float = 1.5
    tau_up_s: tuple[float, float] = (30.0, 60.0)
    tau_down_ratio: tuple[float, float] = (1.2, 1.8)
    tau_max_s: float = 90.0
    drift_bpm_per_h: tuple[float, float] = (2.0, 12.0)
    sensor_noise_bpm: float = 2.5
    day_to_day_bpm: float = 5.0
    native_speed_rate: float = 0.2
    stop_rate: float = 0.4
    sports: dict[str, float] = field(
        default_factory=lambda: {
            "run": 0.70,
            "bike": 0.14,
            "walk": 0.07,
            "mountain bike": 0.04,
            "bike (transport)": 0.05,
        }
    )
    archetypes: dict[str, float] = field(
        default_factory=lambda: {
            "easy": 0.30,
            "steady": 0.33,
            "progressive": 0.12,
            "intervals": 0.10,
            "hilly": 0.15,
        }
    )
    terrains: dict[str, float] = field(
        default_factory=lambda: {"flat": 0.45, "rolling": 0.40, "hilly": 0.15}
    )
    faults: dict[str, float] = field(
        default_factory=lambda: {
            "offset_full": 0.025,
            "offset_partial": 0.025,
            "dropout": 0.025,
            "flatline": 0.025,
            "spike": 0.025,
            "cadence_lock": 0.025,
            "gps_spike": 0.015,
            "timestamp_gap": 0.015,
            "timestamp_nonmonotonic": 0.015,
            "length_mismatch": 0.015,
            "altitude_unrealistic": 0.015,
            "malformed_line": 0.005,
        }
    )
    offset_bpm: tuple[float, float] = (20.0, 60.0)

    def __post_init__(self) -> None:
        if self.n_users < 1 or self.n_workouts < self.n_users:
            raise ParamError("params.yaml: simulate needs 1 <= n_users <= n_workouts")
        if self.points < 50:
            raise ParamError("params.yaml: simulate.points must be >= 50")
        if self.chunk_size < 1:
            raise ParamError("params.yaml: simulate.chunk_size must be >= 1")
        unknown = set(self.faults) - set(FAULTS)
        if unknown:
            raise ParamError(f"params.yaml: simulate.faults has unknown types {sorted(unknown)}")
        if sum(self.faults.values()) >= 1.0:
            raise ParamError("params.yaml: simulate.faults rates must sum to < 1")
        for name, known in (("archetypes", ARCHETYPES), ("terrains", TERRAINS)):
            bad = set(getattr(self, name)) - set(known)
            if bad:
                raise ParamError(f"params.yaml: simulate.{name} has unknown names {sorted(bad)}")

    @classmethod
    def from_params(cls, p: Params) -> SimConfig:
        """Build from the `simulate:` section; absent keys keep the defaults above."""
        d = cls()
        kw: dict[str, Any] = {}
        for key in ("seed", "n_users", "n_workouts", "points", "chunk_size", "workers"):
            kw[key] = p.int(key, getattr(d, key))
        for key in (
            "step_s_mean",
            "step_s_spread",
            "user_workouts_sigma",
            "female_rate",
            "max_hr_sd",
            "hrr_per_rel_speed",
            "grade_cost_up",
            "grade_cost_down",
            "tau_max_s",
            "sensor_noise_bpm",
            "day_to_day_bpm",
            "native_speed_rate",
            "stop_rate",
        ):
            kw[key] = p.float(key, getattr(d, key))
        for key in (
            "age",
            "rest_hr",
            "threshold_speed_kmh",
            "hrr_at_threshold",
            "tau_up_s",
            "tau_down_ratio",
            "drift_bpm_per_h",
            "offset_bpm",
        ):
            kw[key] = _range(p, key, list(getattr(d, key)))
        for key in ("sports", "archetypes", "terrains"):
            kw[key] = _mix(p, key, getattr(d, key))
        kw["faults"] = _mix(p, "faults", d.faults, allow_zero=True)
        return cls(**kw)
