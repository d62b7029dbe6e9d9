"""All clean-stage settings: frozen dataclasses for the `clean:` params section.

`CleanConfig` nests one dataclass per sub-section: speed (`SpeedConfig`, owned by
hrpred.timeseries, shared with serving), rules, detector, correct, smooth, hr_filters.

Fields carry types, not defaults: the params files are the one home of every value (the
policy knobs in params.yaml `clean:`, the thresholds in params/clean.yaml), and
`load_config(CleanConfig, "clean")` is the one way to build them. Value checks live in
`__post_init__` (or in `Literal` annotations, which `load_config` checks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hrpred.params import ParamError
from hrpred.timeseries import SpeedConfig

HrType = Literal["INTENSIVE", "INTERVALS", "STEADY", "RECOVERY", "UNKNOWN"]
# Faults the detector can name, by precedence when a workout shows several (the first is
# the workout's `fault`); every one but gps_corruption has an action in clean.correct.
FAULT_PRECEDENCE = (
    "whole_run_lock",
    "stuck_low",
    "slow_lock",
    "strap_drying",
    "offset_partial",
    "cadence_lock",
    "cadence_follow",
    "lagging_noisy",
    "offset_full",
    "flatline",
    "low_dropout",
    "dropout",
    "spike",
    "gps_corruption",
)
OFFSET_FAULTS = ("offset_full", "offset_partial")  # the only ones `correct` applies to
Action = Literal["correct", "mask", "reject"]


@dataclass(frozen=True)
class RuleConfig:
    """Rule checks: thresholds in params/clean.yaml `rules`, gap_action in params.yaml clean.rules."""

    min_points: int
    min_duration_min: float
    gap_action: Literal["reject", "flag", "pause"]  # TS01, gaps > PAUSE_MIN_S: reject, flag, or
    # judge each a pause (kept) or a clock jump (rejected as timestamp_gap): clean/pauses.py
    pause_hr_drop_bpm: float  # a gap after which HR reads this much lower is a pause
    jump_max_move_steps: float  # a clock jump moves at most this many typical steps
    altitude_min_m: float
    altitude_max_m: float
    min_mean_speed_kmh: float
    hr_low_bpm: float  # valid HR range (BPM); also the clip of offset-corrected HR
    hr_high_bpm: float
    hr_step_spike_bpm: float
    flatline_run: int
    low_std_bpm: float
    low_std_min_points: int
    sudden_change_bpm: float
    sudden_window_s: float
    sudden_rise_skip: int
    sudden_max_lag: int
    speed_high_kmh: float
    speed_high_count: int
    zero_moving_speed_kmh: float
    zero_moving_hr_bpm: float
    zero_moving_count: int
    speed_step_kmh: float
    mismatch_corr: float
    mismatch_min_points: int
    ts_irregular_std_s: float
    altitude_step_m: float
    offset_a_speed_kmh: float
    offset_a_hr_bpm: float
    offset_b_max_hr_bpm: float
    offset_b_duration_min: float
    offset_b_speed_kmh: float
    offset_c_corr: float
    offset_c_hr_bpm: float

    def __post_init__(self) -> None:
        if self.altitude_min_m > self.altitude_max_m:
            raise ParamError("params.yaml: clean.rules needs altitude_min_m <= altitude_max_m")
        if self.hr_low_bpm > self.hr_high_bpm:
            raise ParamError("params.yaml: clean.rules needs hr_low_bpm <= hr_high_bpm")


@dataclass(frozen=True)
class DetectorConfig:
    """Detector thresholds (values and units: params/clean.yaml `detector`; the grade costs are
    params/simulate.yaml's, filled in by hrpred.params.SHARED_KEYS)."""

    dropout_max_bpm: float
    dropout_jump_bpm: float
    spike_window: int
    spike_bpm: float
    spike_max_run: int
    flatline_run: int
    flatline_min_s: float
    tau_fast_s: float
    tau_slow_s: float
    tau_start_s: float
    grade_window_s: float
    grade_cost_up: float
    grade_cost_down: float
    segment_min_len: int
    segment_grid: int
    segment_min_shift_bpm: float
    segment_min_score: float
    offset_min_len: int
    offset_min_shift_bpm: float
    offset_min_share: float
    edge_steps: int
    edge_window: int
    edge_fraction: float
    edge_min_bpm: float
    edge_sharpness: float
    edge_max_dspeed_kmh: float
    edge_min_kmh: float
    edge_min_s: float
    lock_max_white: float
    lock_above_level: float
    offset_after_pause_s: float
    lock_min_bpm: float
    lock_max_bpm: float
    lock_noise_ratio: float
    lock_weak_min_score: float
    lock_weak_min_shift_bpm: float
    lock_weak_max_fraction: float
    lock_weak_noise_ratio: float
    lock_level_vouch: float
    lock_level_min_bpm: float
    lock_level_noise_ratio: float
    lock_pause_drop_bpm: float
    level_tau_s: float
    level_warmup_s: float
    level_min_points: int
    level_ridge_points: float
    full_min_offset_bpm: float
    full_few_workouts: float
    full_pop_min_offset_bpm: float
    full_noise_bpm: float
    full_spread_z: float
    full_spread_min_runs: int
    level_local_runs: int
    level_local_prior: float
    full_persist_runs: int
    full_persist_share: float
    speed_fault_min_kmh: float
    low_dropout_max_bpm: float
    low_dropout_jump_bpm: float
    low_dropout_max_run: int
    start_high_bpm: float
    rise_from_s: float
    rise_to_s: float
    whole_max_rise_bpm: float
    whole_min_r2: float
    stuck_max_bpm: float
    slow_lock_min_s: float
    slow_lock_max_s: float
    slow_lock_max_noise_bpm: float
    slow_lock_min_jump_bpm: float
    slow_lock_low_max_bpm: float
    slow_lock_cadence_jump_bpm: float
    drying_fit_from_s: float
    drying_min_s: float
    drying_max_s: float
    drying_min_score: float
    drying_min_shortfall: float
    drying_start_tau_s: tuple[float, ...]
    warmup_bins_s: tuple[float, ...]
    warmup_quantile: float
    warmup_prior_runs: float
    noisy_min_score: float
    noisy_min_log_ratio: float
    noisy_min_fraction: float
    noisy_max_fraction: float
    noisy_max_step_corr: float
    follow_min_t: float
    lock_fixed_min_bpm: float
    follow_min_slope: float
    follow_slope_max_bpm: float
    quiet_min_score: float
    quiet_max_white: float
    quiet_weak_min_score: float
    quiet_weak_max_white: float
    span_margin: int

    def __post_init__(self) -> None:
        if not 0.0 < self.noisy_min_fraction < self.noisy_max_fraction < 1.0:
            raise ParamError(
                "params.yaml: clean.detector needs 0 < noisy_min_fraction < noisy_max_fraction < 1"
            )
        bins = self.warmup_bins_s
        if (
            len(bins) < 2
            or any(b <= a for a, b in zip(bins, bins[1:], strict=False))
            or bins[0] < 0
        ):
            raise ParamError(
                "params.yaml: clean.detector.warmup_bins_s must be >= 2 increasing times >= 0"
            )
        if not 0.0 <= self.warmup_quantile <= 1.0 or self.warmup_prior_runs < 0:
            raise ParamError(
                "params.yaml: clean.detector needs 0 <= warmup_quantile <= 1 and "
                "warmup_prior_runs >= 0"
            )
        if not self.drying_start_tau_s or min(self.drying_start_tau_s) <= 0:
            raise ParamError(
                "params.yaml: clean.detector.drying_start_tau_s must list time constants > 0"
            )
        if self.edge_steps < 1 or self.edge_window < 1 or self.level_local_runs < 0:
            raise ParamError(
                "params.yaml: clean.detector needs edge_steps, edge_window >= 1 and "
                "level_local_runs >= 0"
            )
        if min(self.level_local_prior, self.full_spread_z, self.flatline_min_s) < 0:
            raise ParamError(
                "params.yaml: clean.detector needs level_local_prior, full_spread_z and "
                "flatline_min_s >= 0"
            )
        if self.full_persist_runs < 0 or not 0.0 < self.full_persist_share <= 1.0:
            raise ParamError(
                "params.yaml: clean.detector needs full_persist_runs >= 0 (0: off) and "
                "0 < full_persist_share <= 1"
            )
        if not 0.0 < self.drying_min_s <= self.drying_max_s <= self.drying_fit_from_s:
            raise ParamError(
                "params.yaml: clean.detector needs 0 < drying_min_s <= drying_max_s "
                "<= drying_fit_from_s"
            )


@dataclass(frozen=True)
class CorrectionConfig:
    """What to do with detected faults (see params.yaml clean.correct)."""

    short_faults: Literal["mask", "interpolate"]  # dropouts, spikes, flatlines, locks
    max_masked_fraction: float  # more bad HR samples than this: reject (fraction) ...
    min_valid_minutes: float  # ... or fewer minutes of valid HR left than this
    max_interpolate_s: float  # interpolate only gaps up to this long (s); else mask
    plausible_mean_min_bpm: float  # corrected workout mean HR must lie in range
    plausible_mean_max_bpm: float
    actions: dict[str, Action]  # per detected fault: correct (offsets) | mask | reject

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_masked_fraction <= 1.0:
            raise ParamError("params.yaml: clean.correct.max_masked_fraction must be in [0, 1]")
        if self.min_valid_minutes < 0:
            raise ParamError("params.yaml: clean.correct.min_valid_minutes must be >= 0")
        if self.plausible_mean_min_bpm > self.plausible_mean_max_bpm:
            raise ParamError("params.yaml: clean.correct needs plausible_mean_min_bpm <= max")
        need = [f for f in FAULT_PRECEDENCE if f != "gps_corruption"]
        missing = [f for f in need if f not in self.actions]
        unknown = [f for f in self.actions if f not in need]
        if missing or unknown:
            raise ParamError(
                f"params.yaml: clean.correct.actions needs exactly {', '.join(need)} "
                f"(missing: {missing or 'none'}; unknown: {unknown or 'none'})"
            )
        wrong = [f for f, a in self.actions.items() if a == "correct" and f not in OFFSET_FAULTS]
        if wrong:
            raise ParamError(
                f"params.yaml: clean.correct.actions: only offsets can be corrected, not {wrong}"
            )


@dataclass(frozen=True)
class SmoothConfig:
    """Optional input smoothing (HR target untouched unless `target` is true)."""

    window: int  # samples; 0 or 1 = off
    causal: bool  # trailing window (no future samples)
    fields: tuple[Literal["speed", "altitude"], ...]
    target: bool  # also smooth heart_rate (the reference did; off: target is raw)

    def __post_init__(self) -> None:
        if self.window < 0:
            raise ParamError("params.yaml: clean.smooth.window must be >= 0")


@dataclass(frozen=True)
class HrFilterConfig:
    """The reference's target-conditioned filters; off in params.yaml (they read HR)."""

    enabled: bool
    mean_min_bpm: float  # drop if mean HR below (BPM)
    max_max_bpm: float  # drop if max HR above (BPM)
    std_min_bpm: float  # drop if HR std below (BPM)
    corr_min: float  # drop if Pearson(HR, speed) below
    drop_types: tuple[HrType, ...]  # HR-derived workout types to drop, e.g. [INTERVALS]


@dataclass(frozen=True)
class CleanConfig:
    """Everything the clean stage needs besides the input path and the output layout."""

    sports: tuple[str, ...]  # sports kept; the others are counted as rejected 'sport'
    truth: str | None  # simulator truth, used for detection metrics when it matches
    workers: int
    chunk_lines: int
    speed: SpeedConfig
    rules: RuleConfig
    detector: DetectorConfig
    correct: CorrectionConfig
    smooth: SmoothConfig
    hr_filters: HrFilterConfig

    def __post_init__(self) -> None:
        if self.workers < 1 or self.chunk_lines < 1:
            raise ParamError("params.yaml: clean.workers and clean.chunk_lines must be >= 1")
