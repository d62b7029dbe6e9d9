"""Pass 2 of the detector on one workout (`decide` -> `Verdict`): what pass 1's findings
(`hrpred.clean.analysis.Analysis`) are once the user's level model is known
(`hrpred.clean.level.LevelModel`): a whole-run lock or stuck-low reading, a start fault, the
change-point segment as a partial offset, a cadence lock (fixed or following the pace) or
benign (`hrpred.clean.segment_calls.classify_segment`), a quiet lock, a lagging noisy segment, a full offset, and the
sample faults, with the samples each covers. The overview is `hrpred.clean.detector`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hrpred.clean.analysis import Analysis
from hrpred.clean.config import FAULT_PRECEDENCE, DetectorConfig
from hrpred.clean.level import LevelModel, full_threshold
from hrpred.clean.segment_calls import classify_segment, deficit, logistic, quiet_call
from hrpred.clean.sensor import strap_drying


@dataclass
class Verdict:
    """Pass-2 outcome of the detector for one workout (before masking policy)."""

    faults: list[str]  # every fault found, by FAULT_PRECEDENCE
    heart_rate: np.ndarray  # offset-corrected HR
    invalid: np.ndarray  # bool: samples that are not heartbeats (to mask or interpolate):
    # every fault's span but the offsets'
    spans: dict[str, np.ndarray]  # bool samples each fault covers (offsets included)
    offset_kind: str  # none | offset_full | offset_partial
    offset_bpm: float  # BPM added on [offset_start, offset_end)
    offset_start: int  # -1 when none
    offset_end: int
    confidence: float  # in (0, 1]
    deficit_bpm: float  # expected minus observed level (NaN when not computed)
    reason: str  # short human-readable explanation


def _span(n: int, start: int, end: int, margin: int = 0) -> np.ndarray:
    """Samples [start - margin, end + margin) of n."""
    out = np.zeros(n, dtype=bool)
    out[max(start - margin, 0) : end + margin] = True
    return out


def decide(
    an: Analysis,
    hr: np.ndarray,
    model: LevelModel,
    gps_fault: bool,
    hr_low: float,
    hr_high: float,
    cfg: DetectorConfig,
) -> Verdict:
    """Pass 2: every fault found with the samples it covers, the offset-corrected HR, the
    invalid-sample mask, the offset applied, a confidence, the level deficit and a reason.

    In order: a whole-run cadence lock (shape alone) or stuck-low reading (shape and a
    level deficit beyond the full-offset threshold) covers the whole run and ends the
    search; else a start fault, the change-point segment (a partial offset or a lock; when
    it is none or benign, a quiet lock at nearly the runner's own HR, if any), a
    lagging noisy segment (unless the segment lies inside it: the lag explains the shift),
    a full offset when no segment fault was found and the runner's next runs do not read
    low too (a level that changed), and the sample faults.

    The spans of a start fault, a lock and a noisy segment are widened by span_margin
    samples each side (their boundaries are estimates; a partial offset's are exact).
    Masks only: the caller applies each fault's action (correct, mask, reject), turns masks
    into masking or interpolation and checks the share of bad samples.
    """
    n = hr.size
    faults: list[str] = []
    reasons: list[str] = []
    spans: dict[str, np.ndarray] = {}
    corrected = hr.astype(np.float64, copy=True)
    offset: tuple[str, float, int, int] = ("none", 0.0, -1, -1)
    confidence = 1.0
    d = deficit(model, an, hr, an.level_mask)
    thr = full_threshold(model.k, cfg, model.spread_bpm)
    basis = f"{model.k} other workouts" if model.k else "population"
    shape = an.shape
    whole = ""
    if shape.whole_lock(cfg):
        whole = "whole_run_lock"
        reasons.append(
            f"whole run locked: starts at {shape.start_bpm:.0f}, rises {shape.rise_bpm:+.0f}, "
            f"follows speed without lag (R2 {shape.r2_instant:.2f} vs {shape.r2_lagged:.2f})"
        )
    elif shape.stuck(cfg) and np.isfinite(d) and d > thr:
        whole = "stuck_low"
        reasons.append(
            f"stuck low: 95% of HR <= {shape.p95_bpm:.0f}, rises {shape.rise_bpm:+.0f}, "
            f"{d:.0f} BPM below expected ({basis}; threshold {thr:.0f})"
        )
    if whole:
        spans[whole] = np.ones(n, dtype=bool)
        return Verdict(
            [whole], corrected, np.ones(n, dtype=bool), spans, "none", 0.0, -1, -1, 1.0, d,
            "; ".join(reasons),
        )  # fmt: skip
    start = an.start
    if start is not None and start[0] == "strap_drying" and an.start_fit is not None:
        # Pass 1's candidate, held against the runner's own usual warm-up.
        dry = strap_drying(an.start_fit, model.warmup, cfg)
        start = None if dry is None else ("strap_drying", dry[0], dry[2])
        if dry is None:
            reasons.append("slow start within the runner's usual warm-ups")
    if start is not None:
        kind, end, why = start
        faults.append(kind)
        spans[kind] = _span(n, 0, end, cfg.span_margin)
        reasons.append(why)
    call = classify_segment(an, hr, model, cfg)
    if call is not None and an.noisy is not None and call.fault != "benign":
        a, b, _ = an.noisy
        if a <= call.start and call.end <= b:
            reasons.append(f"({call.reason}: inside the noisy segment)")
            call = None
    if (call is None or call.fault == "benign") and an.quiet is not None:
        call = quiet_call(an, hr, cfg)
    if call is not None:
        reasons.append(call.reason)
        confidence = call.confidence
        if call.fault == "offset_partial":
            corrected[call.start : call.end] += call.offset_bpm
            offset = ("offset_partial", call.offset_bpm, call.start, call.end)
        if call.fault != "benign":
            faults.append(call.fault)
            margin = 0 if call.fault == "offset_partial" else cfg.span_margin
            spans[call.fault] = _span(n, call.start, call.end, margin)
    if an.noisy is not None:
        a, b, ratio = an.noisy
        faults.append("lagging_noisy")
        spans["lagging_noisy"] = _span(n, a, b, cfg.span_margin)
        reasons.append(f"noisy segment [{a},{b}): step changes x{np.exp(ratio / 2):.1f}")
    later = model.later_deficit_bpm
    persists = bool(np.isfinite(later) and later >= cfg.full_persist_share * d)
    if (call is None or call.fault == "benign") and np.isfinite(d) and d > thr and persists:
        reasons.append(
            f"HR {d:.0f} BPM below expected ({basis}; threshold {thr:.0f}) and the runner's "
            f"next runs {later:.0f} below it too: their level changed, not a sensor"
        )
    elif call is None or call.fault == "benign":
        if np.isfinite(d) and d > thr:
            corrected += d
            offset = ("offset_full", d, 0, n)
            faults.append("offset_full")
            spans["offset_full"] = np.ones(n, dtype=bool)
            confidence = logistic((d - thr) / cfg.full_noise_bpm)
            reasons.append(f"HR {d:.0f} BPM below expected ({basis}; threshold {thr:.0f})")
        elif np.isfinite(d):
            confidence = logistic((thr - d) / cfg.full_noise_bpm)
    for name, mask in (
        ("flatline", an.flat),
        ("low_dropout", an.low_dropout),
        ("dropout", an.dropout),
        ("spike", an.spike),
    ):
        if mask.any():
            faults.append(name)
            spans[name] = mask
            reasons.append(f"{name}: {int(mask.sum())} samples")
    if gps_fault:
        faults.append("gps_corruption")
        reasons.append("GPS/speed spikes repaired")
    invalid = np.zeros(n, dtype=bool)
    for name, mask in spans.items():
        if name not in ("offset_full", "offset_partial"):
            invalid |= mask
    invalid |= (corrected < hr_low) | (corrected > hr_high)
    faults.sort(key=FAULT_PRECEDENCE.index)
    kind, bpm, start, end = offset
    return Verdict(
        faults, corrected, invalid, spans, kind, bpm, start, end, confidence, d,
        "; ".join(reasons),
    )  # fmt: skip
