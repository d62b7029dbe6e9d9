"""The clean stage's work on one chunk of input lines, run in the worker processes.

Pass 1 (`pass1_chunk`): parse, keep the configured sports, coerce, structural rules,
speed, content rules, recording gaps (under `gap_action: pause`), per-workout analysis
(sample faults, sensor faults, change-point segment, level statistics). Rejected lines and
candidate workouts of a chunk are pickled to a temporary file; only small per-workout level
statistics go back to the driver.
Pass 2 (`pass2_chunk`): with the user's level model, decisions, each fault's action
(params.yaml clean.correct.actions), the gaps judged pause or clock jump on the HR the
detector trusts, and corrections; returns the chunk's output batches (sorted by line) and
its counts.
"""

from __future__ import annotations

import pickle
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from hrpred.clean.config import OFFSET_FAULTS, CleanConfig
from hrpred.clean.corrections import (
    fill_short_gaps,
    hr_filter_reason,
    offset_plausible,
    smooth_inputs,
)
from hrpred.clean.detector import N_LEVEL_STATS, Analysis, LevelModel, analyse, decide
from hrpred.clean.outputs import (
    REJECTS_SCHEMA,
    REPORT_SCHEMA,
    WORKOUTS_SCHEMA,
    list_column,
    report_row,
)
from hrpred.clean.pauses import PAUSE_MIN_S, gap_steps, judge_gaps
from hrpred.clean.rules import INFO_FLAGS, rule_flags, structural_reason
from hrpred.clean.workout import Workout, coerce_workout
from hrpred.io.raw import (
    RawItem,
    item_from_line,
    iter_raw,
    iter_raw_lines,
    sniff_format,
    without_addresses,
)
from hrpred.timeseries import speed_from_recording

# Worker-global settings (set once per process by the pool initializer).
_CFG: CleanConfig | None = None


def init_worker(cfg: CleanConfig) -> None:
    """Pool initializer: the settings every task of this process uses."""
    global _CFG
    _CFG = cfg


def _cfg() -> CleanConfig:
    assert _CFG is not None, "worker not initialised"
    return _CFG


# ------------------------------------------------------------------------------ parsing


Task = tuple[int, list[tuple[int, bytes] | RawItem], str]


def iter_tasks(path: Path, chunk_lines: int, tmpdir: str) -> Iterator[Task]:
    """Chunks of the input: raw lines (parsed in the workers) for line files, plain or
    gzip'ed, with over-long lines and a broken gzip stream as error RawItems; RawItems from
    `iter_raw` for Parquet."""
    fmt = sniff_format(path)
    entries = iter_raw(path) if fmt == "parquet" else iter_raw_lines(path, fmt)
    index = 0
    batch: list[tuple[int, bytes] | RawItem] = []
    for entry in entries:
        batch.append(entry)
        if len(batch) >= chunk_lines:
            yield index, batch, tmpdir
            index += 1
            batch = []
    if batch:
        yield index, batch, tmpdir


# ------------------------------------------------------------------------------ pass 1


@dataclass
class Rejected:
    """A line or workout rejected in pass 1."""

    line: int
    workout_id: int | None
    user_id: int | None
    sport: str
    reason: str
    detail: str
    flags: str = ""
    speed_source: str = ""


@dataclass
class Candidate:
    """A workout that reached the detector."""

    w: Workout
    speed: np.ndarray
    speed_source: str
    gps_fault: bool
    speed_detail: str
    flags: dict[str, float]
    an: Analysis
    gaps: np.ndarray  # first sample after each gap (int64; judged in pass 2, once the
    # detector has said which HR samples can be trusted)


@dataclass
class Pass1Result:
    """What pass 1 returns for one chunk (the bulky part stays on disk)."""

    index: int
    n_lines: int
    unparseable: int
    sports: Counter[str]
    lines: np.ndarray  # candidate lines
    users: np.ndarray
    stats: np.ndarray  # [m, N_LEVEL_STATS]
    eligible: np.ndarray
    warmup: np.ndarray  # [m, warm-up bins]: each run's warm-up shortfall (NaN: unknown)
    starts: np.ndarray  # [m] each run's first timestamp (s)


def examine(item: RawItem, cfg: CleanConfig) -> Rejected | Candidate:
    """Pass 1 on one input item: a rejection or a candidate for the detector."""
    if item.workout is None:
        return Rejected(item.line, None, None, "", "unparseable", item.error or "")
    d = item.workout
    sport = d.get("sport") if isinstance(d.get("sport"), str) else ""
    wid = d.get("id") if type(d.get("id")) is int else None
    uid = d.get("userId") if type(d.get("userId")) is int else None
    if sport not in cfg.sports:
        return Rejected(item.line, wid, uid, sport, "sport", sport)
    w = coerce_workout(item.line, d)
    if isinstance(w, str):
        return Rejected(item.line, wid, uid, sport, w.split(":")[0], w)
    reason = structural_reason(w, cfg.rules)
    if reason is not None:
        return Rejected(item.line, wid, uid, sport, reason, "")
    gaps = np.zeros(0, dtype=np.int64)
    if cfg.rules.gap_action == "pause":
        gaps = gap_steps(w.ts, PAUSE_MIN_S)
    # The detector's drive stops over the gaps that look like pauses on the raw HR (a clock
    # jump has no pause in it); pass 2 judges again on the HR the detector trusts.
    pauses, _ = judge_pauses(w, gaps, w.hr, cfg)
    sp = speed_from_recording(w.ts, w.speed, w.lat, w.lon, cfg.speed)
    if sp.speed is None:
        return Rejected(item.line, wid, uid, sport, "no_speed", sp.reason)
    mean_speed = float(sp.speed.mean())
    if mean_speed < cfg.rules.min_mean_speed_kmh:
        return Rejected(
            item.line, wid, uid, sport, "speed_too_low", f"{mean_speed:.2f} km/h", "", sp.source
        )
    raw_speed = sp.raw if sp.raw is not None else sp.speed
    flags = rule_flags(w.ts, w.hr, w.alt, raw_speed, sp.speed, cfg.rules)
    an = analyse(
        w.ts,
        w.hr,
        sp.speed,
        w.alt,
        cfg.rules.hr_low_bpm,
        cfg.rules.hr_high_bpm,
        cfg.detector,
        pauses,
    )
    gps_fault = sp.n_spikes > 0 and sp.raw_max > cfg.detector.speed_fault_min_kmh
    w.speed = None  # the chosen speed travels on; the native copy is not needed again
    detail = (
        f"{sp.n_spikes} speed samples repaired (raw max {sp.raw_max:.0f} km/h)" if gps_fault else ""
    )
    return Candidate(w, sp.speed, sp.source, gps_fault, detail, flags, an, gaps)


def pass1_chunk(task: Task) -> Pass1Result:
    """Examine one chunk; pickle its rejections and candidates for pass 2."""
    cfg = _cfg()
    index, payload, tmpdir = task
    out: list[Rejected | Candidate] = []
    sports: Counter[str] = Counter()
    unparseable = 0
    for entry in payload:
        item = entry if isinstance(entry, RawItem) else item_from_line(*entry)
        if item.workout is None:
            unparseable += 1
        elif isinstance(item.workout.get("sport"), str):
            sports[item.workout["sport"]] += 1
        try:
            res = examine(item, cfg)
        except Exception as exc:  # noqa: BLE001 - never let one odd workout stop the stage
            wid = item.workout.get("id") if item.workout else None
            res = Rejected(
                item.line,
                wid if type(wid) is int else None,
                None,
                "",
                "error",
                without_addresses(f"{type(exc).__name__}: {exc}")[:200],
            )
        out.append(res)
    cands = [r for r in out if isinstance(r, Candidate)]
    with open(Path(tmpdir) / f"chunk-{index:07d}.pkl", "wb") as f:
        pickle.dump(out, f, protocol=pickle.HIGHEST_PROTOCOL)
    return Pass1Result(
        index=index,
        n_lines=len(payload),
        unparseable=unparseable,
        sports=sports,
        lines=np.array([c.w.line for c in cands], dtype=np.int64),
        users=np.array([c.w.user_id for c in cands], dtype=np.int64),
        stats=np.array([c.an.stats for c in cands]).reshape(-1, N_LEVEL_STATS),
        eligible=np.array([c.an.eligible for c in cands], dtype=bool),
        warmup=np.array([c.an.warmup for c in cands]).reshape(
            len(cands), len(cfg.detector.warmup_bins_s) - 1
        ),
        starts=np.array([c.w.ts[0] for c in cands], dtype=np.float64),
    )


# ------------------------------------------------------------------------------ pass 2

# index, tmpdir, coef [m, 3], k [m], usual warm-up [m, bins], deficit spread [m],
# later runs' median deficit [m] (population.later_deficits)
Pass2Task = tuple[int, str, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass
class Pass2Result:
    """One chunk's outputs, ready to write, plus its counts."""

    workouts: pa.RecordBatch | None = None
    rejects: pa.RecordBatch | None = None
    report: pa.RecordBatch | None = None
    kept: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    corrected: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    speed_source: Counter[str] = field(default_factory=Counter)
    pauses: Counter[str] = field(default_factory=Counter)  # workouts, pauses, seconds (kept)


def judge_pauses(
    w: Workout, gaps: np.ndarray, hr: np.ndarray, cfg: CleanConfig
) -> tuple[np.ndarray, str]:
    """(first samples after the gaps kept as pauses, '' or the first clock jump's
    description) of a workout, judged on `hr` (NaN where it is not to be trusted)."""
    if gaps.size == 0:
        return gaps, ""
    r = cfg.rules
    calls = judge_gaps(
        w.ts, hr, w.lat, w.lon, gaps, r.hr_low_bpm, r.pause_hr_drop_bpm, r.jump_max_move_steps
    )
    jumps = [g for g in calls if g.kind == "clock_jump"]
    steps = np.array([g.step for g in calls if g.kind == "pause"], dtype=np.int64)
    if not jumps:
        return steps, ""
    g = jumps[0]
    return steps, (
        f"clock jump of {g.seconds:.0f} s at step {g.step} (HR {g.hr_drop_bpm:+.0f} BPM "
        f"across it, moved {g.moved_steps:.1f} steps)"
    )


def valid_minutes(ts: np.ndarray, valid: np.ndarray) -> float:
    """Minutes of valid HR: each valid sample's step to the next, pauses (steps of
    PAUSE_MIN_S or more) left out."""
    steps = np.diff(ts.astype(np.float64), append=float(ts[-1]))
    return float(steps[valid & (steps < PAUSE_MIN_S)].sum()) / 60.0


def finalize(
    c: Candidate, model: LevelModel, cfg: CleanConfig
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Pass 2 on one candidate: (report row, output row or None when rejected)."""
    w, an = c.w, c.an
    det = cfg.detector
    v = decide(an, w.hr, model, c.gps_fault, cfg.rules.hr_low_bpm, cfg.rules.hr_high_bpm, det)
    faults, hr, invalid, reason = v.faults, v.heart_rate.copy(), v.invalid.copy(), v.reason
    kind, offset_bpm, o_start, o_end = v.offset_kind, v.offset_bpm, v.offset_start, v.offset_end
    confidence, deficit = v.confidence, v.deficit_bpm
    reject_fault = None
    for f in faults:  # each fault's action (params.yaml clean.correct.actions)
        action = cfg.correct.actions.get(f)
        if action == "reject" and reject_fault is None:
            reject_fault = f
        elif action == "mask" and f in OFFSET_FAULTS:
            span = v.spans[f]
            hr[span] = w.hr[span]
            invalid |= span
            kind, offset_bpm, o_start, o_end = "none", 0.0, -1, -1
    pause_step, jump = judge_pauses(w, c.gaps, np.where(invalid, np.nan, hr), cfg)
    correction = kind
    masked = invalid.copy()
    if masked.any() and cfg.correct.short_faults == "interpolate":
        hr, masked = fill_short_gaps(hr, masked, w.ts, cfg.correct.max_interpolate_s)
        if correction == "none" and (invalid & ~masked).any():
            correction = "interpolated"
    if correction == "none" and masked.any():
        correction = "masked"
    valid = ~masked
    if faults:
        fault = faults[0]
    elif any(f not in INFO_FLAGS for f in c.flags):
        fault = "benign"  # flagged by the rules, nothing found: kept unchanged
    else:
        fault = "none"
    reject = None
    if reject_fault is not None:
        reject, fault = "unusable", reject_fault
        reason = f"{reason}; {reject_fault} rejects the workout".lstrip("; ")
    elif jump:
        reject = "timestamp_gap"
        reason = f"{reason}; {jump}".lstrip("; ")
    elif masked.mean() > cfg.correct.max_masked_fraction or (
        masked.any() and valid_minutes(w.ts, ~masked) < cfg.correct.min_valid_minutes
    ):
        reject = "unusable"  # too little valid HR left to keep (fault says which kind)
        reason = (
            f"{reason}; {masked.mean():.0%} of HR samples invalid, "
            f"{valid_minutes(w.ts, ~masked):.0f} min valid"
        ).lstrip("; ")
    elif kind != "none":
        hr = np.clip(hr, cfg.rules.hr_low_bpm, cfg.rules.hr_high_bpm)  # the valid HR range
        if not offset_plausible(hr, valid, cfg.correct):
            reject = "offset_implausible"
    speed, alt, hr_out = smooth_inputs(c.speed, w.alt, hr, cfg.smooth)
    if reject is None:
        reject = hr_filter_reason(hr_out, speed, valid, cfg.hr_filters)
    detail = "; ".join(s for s in (reason, c.speed_detail) if s)
    report = report_row(
        line=w.line,
        workout_id=w.workout_id,
        user_id=w.user_id,
        sport=w.sport,
        decision="kept" if reject is None else "rejected",
        reason=reject or "",
        fault=fault,
        faults=",".join(faults),
        flags=",".join(c.flags),
        correction=correction,
        offset_bpm=float(offset_bpm),
        offset_start=int(o_start),
        offset_end=int(o_end),
        confidence=float(confidence),
        deficit_bpm=float(deficit),
        level_k=int(model.k),
        segment_score=float(an.score),
        speed_source=c.speed_source,
        n_invalid=int(masked.sum()),
        n_pauses=int(pause_step.size),
        detail=detail,
    )
    if reject is not None:
        return report, None
    empty = np.empty(0)
    out = {
        "workout_id": w.workout_id,
        "user_id": w.user_id,
        "line": w.line,
        "sport": w.sport,
        "gender": w.gender,
        "timestamp": w.ts,
        "speed": speed,
        "speed_source": c.speed_source,
        "altitude": alt,
        "latitude": w.lat if w.lat is not None else empty,
        "longitude": w.lon if w.lon is not None else empty,
        "heart_rate": hr_out,
        "heart_rate_raw": w.hr,
        "hr_valid": valid,
        "fault": fault,
        "correction": correction,
        "offset_bpm": float(offset_bpm),
        "offset_start": int(o_start),
        "offset_end": int(o_end),
        "confidence": float(confidence),
        "pause_step": pause_step,
        "pause_s": np.diff(w.ts)[pause_step - 1].astype(np.float64),
    }
    return report, out


def pass2_chunk(task: Pass2Task) -> Pass2Result:
    """Decide every candidate of a chunk and build its output batches (sorted by line)."""
    cfg = _cfg()
    index, tmpdir, coef, k, warm, spread, later = task
    path = Path(tmpdir) / f"chunk-{index:07d}.pkl"
    with open(path, "rb") as f:
        items: list[Rejected | Candidate] = pickle.load(f)
    path.unlink()
    res = Pass2Result()
    reports: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    j = 0
    for item in items:
        if isinstance(item, Rejected):
            reports.append(
                report_row(
                    line=item.line,
                    workout_id=item.workout_id,
                    user_id=item.user_id,
                    sport=item.sport,
                    reason=item.reason,
                    flags=item.flags,
                    speed_source=item.speed_source,
                    detail=item.detail,
                )
            )
            rejects.append(
                {
                    "line": item.line,
                    "workout_id": item.workout_id,
                    "reason": item.reason,
                    "detail": item.detail,
                }
            )
            res.rejected[item.reason] += 1
            continue
        model = LevelModel(coef[j], int(k[j]), warm[j], float(spread[j]), float(later[j]))
        j += 1
        try:
            report, out = finalize(item, model, cfg)
        except Exception as exc:  # noqa: BLE001 - never let one odd workout stop the stage
            detail = without_addresses(f"{type(exc).__name__}: {exc}")[:200]
            w = item.w
            report = report_row(
                line=w.line,
                workout_id=w.workout_id,
                user_id=w.user_id,
                sport=w.sport,
                reason="error",
                detail=detail,
            )
            out = None
        reports.append(report)
        if report["fault"]:
            res.faults[report["fault"]] += 1
        if out is None:
            rejects.append(
                {
                    "line": report["line"],
                    "workout_id": report["workout_id"],
                    "reason": report["reason"],
                    "detail": report["detail"],
                }
            )
            res.rejected[report["reason"]] += 1
        else:
            rows.append(out)
            res.kept += 1
            res.corrected[out["correction"]] += 1
            res.speed_source[out["speed_source"]] += 1
            if out["pause_step"].size:
                res.pauses["workouts"] += 1
                res.pauses["pauses"] += int(out["pause_step"].size)
                res.pauses["seconds"] += int(out["pause_s"].sum())
    res.report = pa.RecordBatch.from_pylist(reports, schema=REPORT_SCHEMA)
    res.rejects = pa.RecordBatch.from_pylist(rejects, schema=REJECTS_SCHEMA)
    if rows:
        cols: dict[str, Any] = {}
        for f in WORKOUTS_SCHEMA:
            values = [r[f.name] for r in rows]
            cols[f.name] = (
                list_column(values, f.type)
                if pa.types.is_list(f.type)
                else pa.array(values, f.type)
            )
        res.workouts = pa.RecordBatch.from_pydict(cols, schema=WORKOUTS_SCHEMA)
    return res
