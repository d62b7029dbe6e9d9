"""`hrpred check run.fit --profile me.json`: was this run's heart rate what the runner's history
predicts, did the sensor fail, and what was the HR where it did?

1. The expectation: the run goes through `predict_activity` with the profile (the headline:
   personalised from the profile's runs that started strictly before it, never this run's HR)
   and the deviation is the mean of recorded minus headline over the run's trusted samples.
2. The usual spread: each earlier run's error against what was expected of it when it ran, from
   the profile's records and plans (its mean population residual `cold_sum / n` minus the
   offset its plan applied), as an RMS pooled with the level-change detector's prior
   (`personal.change.noise_bpm` worth `noise_prior_runs` runs, from the bundle: the same prior
   `hrpred.personal.change` uses). A deviation beyond CHECK_Z usual spreads is reported as
   above (heat, fatigue, illness or a sensor?) or below expectation.
3. The sensor: the clean stage's detector (`hrpred.clean.analysis.analyse` and
   `hrpred.clean.classify.decide`, the same code, with the params files' `clean` section when
   they are at hand) on the file's own samples, its level model fitted on the run itself (so
   the whole-run level checks stay quiet: the profile's expectation does that job). Its
   suspect spans are listed and left out of the deviation.
4. `hr_filled`: the recorded HR where it is valid (a heartbeat in range, not flagged), the
   headline prediction with its band where it is missing or flagged (`filled` says which);
   the training load (TRIMP, `hrpred.serve.plan_summary.trimp`) of the filled curve.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hrpred.bundle.runtime import Bundle
from hrpred.errors import HrpredError
from hrpred.io.activity import HR_MAX_BPM, HR_MIN_BPM, Activity
from hrpred.personal.config import ChangeConfig
from hrpred.serve.plan_summary import DEFAULT_REST_HR, trimp
from hrpred.serve.predict import HEADLINE_COLUMNS, predict_activity
from hrpred.serve.profile import Profile
from hrpred.serve.summary import MIN_HR_POINTS

CHECK_Z = 2.0  # a run whose mean error is beyond this many usual spreads is reported


@dataclass
class Check:
    """A checked run: per point (`frame`), the verdict and its numbers (`summary`)."""

    frame: pd.DataFrame
    summary: dict[str, Any]
    warnings: list[str]


def usual_spread(profile: Profile, start_s: float, cfg: ChangeConfig) -> tuple[float, int]:
    """The usual size (BPM) of an earlier run's mean error against what its own earlier runs
    predicted, and the number of runs it comes from (those that started before `start_s` and
    had an earlier run themselves), pooled with the change detector's prior."""
    errors = []
    for run in profile.runs:
        rec, plan = run["record"], run["plan"]
        if run["start_time"] < start_s and rec["n"] > 0 and plan["earlier_runs"] > 0:
            errors.append(rec["cold_sum"] / rec["n"] - plan["offset_bpm"])
    e = np.asarray(errors, dtype=np.float64)
    total = cfg.noise_prior_runs * cfg.noise_bpm**2 + float((e * e).sum())
    count = cfg.noise_prior_runs + len(e)
    return (float(np.sqrt(total / count)) if count > 0 else cfg.noise_bpm), len(e)


def _spans(ts: np.ndarray, masks: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Each fault's contiguous spans as {fault, start_s, end_s} (seconds from the start)."""
    out = []
    for fault, mask in masks.items():
        m = np.concatenate([[False], np.asarray(mask, bool), [False]]).astype(np.int8)
        starts, ends = np.flatnonzero(np.diff(m) == 1), np.flatnonzero(np.diff(m) == -1)
        for a, b in zip(starts, ends, strict=True):
            t0, t1 = float(ts[a] - ts[0]), float(ts[b - 1] - ts[0])
            out.append({"fault": fault, "start_s": t0, "end_s": t1})
    return sorted(out, key=lambda s: s["start_s"])


def detector_flags(activity: Activity) -> tuple[np.ndarray | None, dict[str, Any]]:
    """The clean stage's detector on one recording: the samples it flags (None when it
    cannot run: no HR, no params files, no speed) and what it found."""
    from hrpred.clean.analysis import analyse  # deferred: the clean stage's modules
    from hrpred.clean.classify import decide
    from hrpred.clean.config import CleanConfig
    from hrpred.clean.level import LevelModel
    from hrpred.clean.pauses import PAUSE_MIN_S, gap_steps
    from hrpred.clean.population import population_model
    from hrpred.params import load_config
    from hrpred.timeseries import speed_from_recording

    if activity.heart_rate is None:
        return None, {"ran": False, "note": "no heart rate recorded"}
    try:
        cfg = load_config(CleanConfig, "clean")
    except (HrpredError, OSError) as exc:
        note = f"no sensor check (the clean stage's params are not at hand: {exc})"
        return None, {"ran": False, "note": note.splitlines()[0]}
    ts = activity.timestamp
    sp = speed_from_recording(
        ts, activity.speed, activity.latitude, activity.longitude, cfg.speed, activity.distance
    )
    if sp.speed is None:
        return None, {"ran": False, "note": f"no sensor check ({sp.reason})"}
    alt = np.zeros(len(ts)) if activity.altitude is None else activity.altitude.copy()
    ok = np.isfinite(alt)
    alt = np.interp(ts, ts[ok], alt[ok]) if ok.any() else np.zeros(len(ts))
    hr = np.nan_to_num(activity.heart_rate, nan=0.0)  # a missing reading is a dropout
    r = cfg.rules
    an = analyse(ts, hr, sp.speed, alt, r.hr_low_bpm, r.hr_high_bpm, cfg.detector,
                 gap_steps(ts, PAUSE_MIN_S))  # fmt: skip
    model = LevelModel(population_model(an.stats[None])[0], 0)
    v = decide(an, hr, model, False, r.hr_low_bpm, r.hr_high_bpm, cfg.detector)
    flagged = np.asarray(v.invalid, bool).copy()
    for mask in v.spans.values():
        flagged |= np.asarray(mask, bool)
    spans = _spans(ts, {f: m for f, m in v.spans.items() if np.any(m)})
    return flagged, {"ran": True, "faults": list(v.faults), "reason": v.reason, "spans": spans}


def _verdict(dev: float, usual: float, runs: int) -> tuple[str, str]:
    if runs == 0:
        return "unknown", "no earlier run with its own earlier runs in the profile: no expectation"
    size = f"(usual ±{usual:.0f})"
    if dev > CHECK_Z * usual:
        return "above", (
            f"HR {dev:.0f} BPM above what your earlier runs predict for this route and pace "
            f"{size}: heat, fatigue, illness or a sensor?"
        )
    if dev < -CHECK_Z * usual:
        return "below", (
            f"HR {-dev:.0f} BPM below what your earlier runs predict for this route and pace "
            f"{size}: fitter, fresher, cooler, or a sensor reading low?"
        )
    return "as_expected", (
        f"HR as your earlier runs predict for this route and pace ({dev:+.0f} BPM {size})"
    )


def check_activity(
    bundle: Bundle,
    activity: Activity,
    profile: Profile,
    gender: str | None = None,
    max_hr: float | None = None,
    rest_hr: float | None = None,
    age: float | None = None,
) -> Check:
    """The run against the runner's history, the detector's verdict and the filled HR."""
    pred = predict_activity(bundle, activity, gender, max_hr, rest_hr, age, profile=profile)
    warns = list(pred.warnings)
    frame = pred.frame
    head = frame[HEADLINE_COLUMNS[pred.summary["headline"]]].to_numpy(np.float64)
    rec = (
        frame["hr_true"].to_numpy(np.float64) if "hr_true" in frame else np.full(len(head), np.nan)
    )
    flagged, detector = detector_flags(activity)
    if flagged is None:
        flagged = np.zeros(len(rec), dtype=bool)
        warns.append(detector["note"])
    valid = np.isfinite(rec) & (rec >= HR_MIN_BPM) & (rec <= HR_MAX_BPM) & ~flagged
    usual, runs = usual_spread(profile, float(activity.timestamp[0]), bundle.personal.change)
    if valid.sum() >= MIN_HR_POINTS:
        dev = float(np.mean(rec[valid] - head[valid]))
        verdict, text = _verdict(dev, usual, runs)
    else:
        dev, verdict = float("nan"), "unknown"
        text = "too little trusted heart rate to compare with your history"
    lo = frame["hr_p10"].to_numpy(np.float64) if "hr_p10" in frame else np.full(len(head), np.nan)
    hi = frame["hr_p90"].to_numpy(np.float64) if "hr_p90" in frame else np.full(len(head), np.nan)
    filled = np.where(valid, rec, head)
    out = frame.assign(
        flagged=flagged,
        filled=~valid,
        hr_filled=filled,
        hr_filled_p10=np.where(valid, rec, lo),
        hr_filled_p90=np.where(valid, rec, hi),
    )
    grid = pred.grid
    on_grid = np.interp(grid.timestamp, activity.timestamp, filled)
    top = float(pred.summary["zone_max_hr"])
    rest = DEFAULT_REST_HR if rest_hr is None else float(rest_hr)
    load = trimp(on_grid, grid.step_s, rest, top, gender or "male")
    summary = {
        "source": activity.source,
        "verdict": verdict,
        "text": text,
        "deviation_bpm": dev,
        "usual_bpm": usual,
        "usual_runs": runs,
        "threshold_z": CHECK_Z,
        "headline": pred.summary["headline"],
        "history": pred.summary.get("history"),
        "detector": detector,
        "filled_share": float(np.mean(~valid)) if len(valid) else 0.0,
        "load_trimp": load,
    }
    return Check(out, summary, warns)


def format_check(name: str, check: Check) -> str:
    """The check's summary as the command prints it."""
    s = check.summary
    lines = [f"{name}: {s['text']}"]
    det = s["detector"]
    if det.get("ran"):
        if det["spans"]:
            lines.append(f"  sensor: {det['reason'] or ', '.join(det['faults'])}")
            for sp in det["spans"][:10]:
                lines.append(
                    f"    {sp['fault']}: {sp['start_s'] / 60:.1f}-{sp['end_s'] / 60:.1f} min"
                )
        else:
            lines.append("  sensor: no fault found by the clean stage's detector")
    lines.append(
        f"  HR filled from the prediction on {100 * s['filled_share']:.0f}% of the samples; "
        f"training load (TRIMP, filled HR) {s['load_trimp']:.0f}"
    )
    return "\n".join(lines)
