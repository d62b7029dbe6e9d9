"""Data quality for the clean stage: deterministic, measured, lossless in its accounting.

Modules (import them directly; this package module imports nothing, so that
`hrpred.clean.hr_types` can be used by the feature code without loading the engine):
- `config`: `CleanConfig` and its sub-configs (built by `load_config(CleanConfig, "clean")`).
- `workout`: raw dict -> typed arrays (or a reject reason).
- `rules`: the reference's stage-1 checks (structural rejects and content flags).
- `detector`: the detector's two passes as the engine uses them, over `level` (the
  expected-HR level model from speed/grade), `analysis` (pass 1: sample faults, change-point
  segments, start faults) and `classify` (pass 2: partial offset, cadence lock, full offsets
  against the user's level); `signal`: the signal primitives they share.
- `sensor`: real sensor failure modes (low dropouts, slow lock, drying strap, lagging noisy
  segment, whole-run lock or stuck reading, a lock that follows the cadence).
- `pauses`: recording gaps judged pause (kept, listed) or clock jump (rejected); the
  `since_pause` feature's definition (numpy only, imported by the feature registry).
- `population`: per-user leave-one-out level models from pass-1 statistics.
- `corrections`: mask / interpolate, plausibility, optional smoothing, opt-in HR filters.
- `hr_types`: the reference's HR-only workout-type rules (opt-in filter, leaky feature).
- `outputs`: the schemas of data/clean/*.parquet and their batch writer.
- `passes`: pass 1 and pass 2 on one chunk of input lines.
- `pipeline`: the two-pass streaming engine (`clean_raw`) and the stage (`run_clean`).
- `truth_metrics`: detection metrics against the simulator's truth (measurement only).
"""
