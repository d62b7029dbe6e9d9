"""All clean-stage settings, built from the `clean:` params section.

Each sub-config is a frozen dataclass whose defaults mirror params.yaml; a params key
that is absent keeps the default, and every value is read with the typed getter that
matches the default's type (so `1e-05` strings work).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from hrpred.clean.detector import DetectorConfig
from hrpred.clean.rules import RuleConfig
from hrpred.clean.speed import SpeedConfig
from hrpred.params import ParamError, Params

T = TypeVar("T")


@dataclass(frozen=True)
class CorrectionConfig:
    """What to do with detected faults (see params.yaml clean.correct)."""

    short_faults: str = "mask"  # mask | interpolate: dropouts, spikes, flatlines, locks
    max_masked_fraction: float = 0.2  # more bad HR samples than this: reject (fraction)
    max_interpolate_s: float = 60.0  # interpolate only gaps up to this long (s); else mask
    offset_hr_min_bpm: float = 30.0  # corrected HR clipped to [min, max] (BPM)
    offset_hr_max_bpm: float = 220.0
    plausible_mean_min_bpm: float = 100.0  # corrected workout mean HR must lie in range
    plausible_mean_max_bpm: float = 200.0


@dataclass(frozen=True)
class SmoothConfig:
    """Optional input smoothing (HR target untouched unless `target` is true)."""

    window: int = 0  # samples; 0 or 1 = off
    causal: bool = True  # trailing window (no future samples)
    fields: tuple[str, ...] = ("speed", "altitude")
    target: bool = False  # also smooth heart_rate (the reference did; off: target is raw)


@dataclass(frozen=True)
class HrFilterConfig:
    """The reference's target-conditioned filters; OFF by default (they read HR)."""

    enabled: bool = False
    mean_min_bpm: float = 120.0  # drop if mean HR below (BPM)
    max_max_bpm: float = 200.0  # drop if max HR above (BPM)
    std_min_bpm: float = 5.0  # drop if HR std below (BPM)
    corr_min: float = -0.3  # drop if Pearson(HR, speed) below
    drop_types: tuple[str, ...] = ()  # HR-derived workout types to drop, e.g. [INTERVALS]


@dataclass(frozen=True)
class CleanConfig:
    """Everything the clean stage needs besides paths."""

    sports: tuple[str, ...] = ("run",)
    workers: int = 2
    chunk_lines: int = 128
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    rules: RuleConfig = field(default_factory=RuleConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    correct: CorrectionConfig = field(default_factory=CorrectionConfig)
    smooth: SmoothConfig = field(default_factory=SmoothConfig)
    hr_filters: HrFilterConfig = field(default_factory=HrFilterConfig)


def dataclass_from_params(cls: type[T], p: Params) -> T:
    """Instance of dataclass `cls` whose fields are read from section `p` by type."""
    default = cls()
    kw: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        value = getattr(default, f.name)
        if isinstance(value, bool):
            kw[f.name] = p.bool(f.name, value)
        elif isinstance(value, int):
            kw[f.name] = p.int(f.name, value)
        elif isinstance(value, float):
            kw[f.name] = p.float(f.name, value)
        elif isinstance(value, str):
            kw[f.name] = p.str(f.name, value)
        elif isinstance(value, tuple):
            raw = p.raw(f.name, list(value))
            if raw is None:
                raw = []
            if not isinstance(raw, list):
                raise ParamError(f"params.yaml: {p._name(f.name)} must be a list, got {raw!r}")
            kw[f.name] = tuple(str(v) for v in raw)
        else:  # nested dataclasses are handled by the caller
            kw[f.name] = value
    return cls(**kw)


def clean_config(p: Params) -> CleanConfig:
    """CleanConfig from the `clean:` section, with a one-line error for bad values."""
    cfg = CleanConfig(
        sports=tuple(str(s) for s in p.list("sports", ["run"])),
        workers=p.int("workers", 2),
        chunk_lines=p.int("chunk_lines", 128),
        speed=dataclass_from_params(SpeedConfig, p.section("speed")),
        rules=dataclass_from_params(RuleConfig, p.section("rules")),
        detector=dataclass_from_params(DetectorConfig, p.section("detector")),
        correct=dataclass_from_params(CorrectionConfig, p.section("correct")),
        smooth=dataclass_from_params(SmoothConfig, p.section("smooth")),
        hr_filters=dataclass_from_params(HrFilterConfig, p.section("hr_filters")),
    )
    if cfg.correct.short_faults not in ("mask", "interpolate"):
        raise ParamError("params.yaml: clean.correct.short_faults must be mask or interpolate")
    if cfg.rules.gap_action not in ("reject", "flag"):
        raise ParamError("params.yaml: clean.rules.gap_action must be reject or flag")
    if cfg.workers < 1 or cfg.chunk_lines < 1:
        raise ParamError("params.yaml: clean.workers and clean.chunk_lines must be >= 1")
    bad = set(cfg.smooth.fields) - {"speed", "altitude"}
    if bad:
        raise ParamError(f"params.yaml: clean.smooth.fields: unknown {sorted(bad)}")
    return cfg
