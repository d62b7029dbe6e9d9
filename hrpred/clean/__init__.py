"""Data quality for the clean stage: deterministic, measured, lossless in its accounting.

Modules:
- `workout`: raw dict -> typed arrays (or a reject reason).
- `speed`: native speed when plausible, else haversine GPS speed with spike repair.
- `rules`: the reference's stage-1 checks (structural rejects and content flags).
- `signal`, `detector`: expected HR from speed/grade, sample faults, change-point
  segments (partial offset, cadence lock), full offsets against the user's level.
- `baseline`: per-user leave-one-out level models from pass-1 statistics.
- `corrections`: mask / interpolate, plausibility, optional smoothing, opt-in HR filters.
- `pipeline`: the two-pass streaming engine (`run_clean`) and the output schemas.
- `evaluation`: detection metrics against the simulator's truth (measurement only).
"""

from hrpred.clean.config import CleanConfig, clean_config
from hrpred.clean.pipeline import (
    REJECTS_SCHEMA,
    REPORT_SCHEMA,
    WORKOUTS_SCHEMA,
    CleanPaths,
    run_clean,
)

__all__ = [
    "REJECTS_SCHEMA",
    "REPORT_SCHEMA",
    "WORKOUTS_SCHEMA",
    "CleanConfig",
    "CleanPaths",
    "clean_config",
    "run_clean",
]
