"""A runner's personal profile (`hrpred profile past/*.fit -o me.json`) and its use in predict.

A profile summarises the runner's own runs WITH heart rate: each file goes through the same
path as `hrpred predict` (resampled to the bundle's grid, speed by the bundle's rules,
features by the registry), and the per-run summary a history model reads
(`hrpred.personal.summaries`: HR level, HR-per-speed slope, ...) is computed from the grid's
features and the recorded HR interpolated onto the grid (paused steps and implausible HR left
out). Files without HR, or without a real date, are skipped with a warning.

Predicting a run with a profile uses only the runs that started STRICTLY before it (start
times compared), the K most recent first (`hrpred.personal.context.build_context`, as the
evaluate stage does); the others are left out with a warning. The profile also states an
estimated personal level (HR at 10 km/h from each run's HR-speed line) and its change over
time, for the runner to read; the model reads the summaries.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hrpred.errors import HrpredError
from hrpred.export.bundle import Bundle, dumps_json
from hrpred.io.activity import HR_MAX_BPM, HR_MIN_BPM, Activity
from hrpred.io.limits import MIN_TIMESTAMP_S
from hrpred.personal.context import Context, build_context
from hrpred.personal.summaries import SUMMARY_FEATURES, Summaries, row_stats, summaries_from_stats

PROFILE_FORMAT = "hrpred-profile"
PROFILE_VERSION = 1
LEVEL_FEATURE = "hr_at_10kmh"  # the pace-independent level the profile reports
LEVEL_RECENT = 10  # the level is the mean over this many most recent runs
DAY_S = 86400.0


class ProfileError(HrpredError, ValueError):
    """A profile that cannot be built, read or used with this bundle (one line)."""


@dataclass(frozen=True)
class Profile:
    """A loaded profile: its JSON content (`runs` sorted by start time)."""

    content: dict[str, Any]

    @property
    def runs(self) -> list[dict[str, Any]]:
        return list(self.content["runs"])

    def summaries(self) -> tuple[np.ndarray, Summaries]:
        """Start times [R] and the runs' summaries (ids 1..R in start order)."""
        runs = self.runs
        starts = np.array([float(r["start_time"]) for r in runs], dtype=np.float64)
        values = np.array(
            [[float(r["summary"][f]) for f in SUMMARY_FEATURES] for r in runs], dtype=np.float32
        ).reshape(len(runs), len(SUMMARY_FEATURES))
        valid = np.array([bool(r["valid"]) for r in runs], dtype=bool)
        return starts, Summaries(np.arange(1, len(runs) + 1, dtype=np.int64), values, valid)


def _date(ts: float) -> str:
    return datetime.fromtimestamp(float(ts), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_summary(bundle: Bundle, activity: Activity, gender: str | None) -> dict[str, Any]:
    """One run's profile entry (ProfileError/ActivityError when it cannot be summarised)."""
    from hrpred.serve.predict import grid_features, on_grid, resample_activity

    if activity.heart_rate is None or np.isfinite(activity.heart_rate).sum() < 2:
        raise ProfileError("no heart rate recorded: a profile needs runs with HR")
    start = float(activity.timestamp[0])
    if start < MIN_TIMESTAMP_S:
        raise ProfileError("no date (relative times): cannot order it among the runs")
    grid = resample_activity(activity, bundle.step_s, bundle.speed)
    feats = grid_features(bundle.features, grid, gender)
    hr = on_grid(activity.timestamp, activity.heart_rate, grid.timestamp)
    assert hr is not None  # >= 2 finite samples checked above
    ok = np.isfinite(hr) & (hr >= HR_MIN_BPM) & (hr <= HR_MAX_BPM) & ~grid.paused
    stats = row_stats(feats[None], hr[None], ok[None], list(bundle.features))
    s = summaries_from_stats(np.array([0]), stats)
    if not s.valid[0]:
        raise ProfileError("too few valid heart-rate samples to summarise the run")
    return {
        "file": Path(activity.source).name,
        "start_time": start,
        "date": _date(start),
        "duration_s": float(grid.timestamp[-1] - grid.timestamp[0]),
        "distance_km": float(np.sum(grid.speed_kmh[1:] / 3.6 * grid.step_s) / 1000.0),
        "valid": True,
        "summary": {f: float(v) for f, v in zip(SUMMARY_FEATURES, s.values[0], strict=True)},
    }


def level_estimate(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The personal level (mean HR at 10 km/h over the most recent runs) and its trend."""
    if not runs:
        return {"runs": 0}
    t = np.array([r["start_time"] for r in runs], dtype=np.float64)
    lv = np.array([r["summary"][LEVEL_FEATURE] for r in runs], dtype=np.float64)
    recent = lv[-LEVEL_RECENT:]
    out: dict[str, Any] = {
        "feature": LEVEL_FEATURE,
        "meaning": "recorded HR (BPM) at 10 km/h from each run's HR-speed line",
        "runs": len(runs),
        "level_bpm": round(float(recent.mean()), 2),
        "level_runs": len(recent),
        "level_all_runs_bpm": round(float(lv.mean()), 2),
        "first_date": _date(t[0]),
        "last_date": _date(t[-1]),
        "trend_bpm_per_30_days": None,
    }
    days = (t - t[0]) / DAY_S
    if len(runs) >= 2 and days[-1] >= 1.0:
        slope = np.polyfit(days, lv, 1)[0]
        out["trend_bpm_per_30_days"] = round(float(slope * 30.0), 2)
    return out


def build_profile(
    bundle: Bundle, files: Sequence[str | Path], gender: str | None = None
) -> tuple[Profile, list[str]]:
    """Profile of the runner's files; skipped files are listed in the warnings."""
    from hrpred.io.userfiles import read_activity

    if bundle.history is None:
        raise ProfileError(
            "this bundle's model is a population model (no history input): export a "
            "history model (params.yaml personal.learned.model: encoder) to personalise"
        )
    runs: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    warns: list[str] = []
    for name in files:
        try:
            runs.append(run_summary(bundle, read_activity(name), gender))
        except (HrpredError, ValueError, OSError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            skipped.append({"file": Path(name).name, "reason": reason})
            warns.append(f"{Path(name).name}: skipped ({reason})")
    runs.sort(key=lambda r: (r["start_time"], r["file"]))
    unique: list[dict[str, Any]] = []
    for r in runs:
        if unique and unique[-1]["start_time"] == r["start_time"]:
            skipped.append({"file": r["file"], "reason": f"same start as {unique[-1]['file']}"})
            warns.append(f"{r['file']}: skipped (same start time as {unique[-1]['file']})")
            continue
        unique.append(r)
    content = {
        "format": PROFILE_FORMAT,
        "format_version": PROFILE_VERSION,
        "bundle": {"step_s": bundle.step_s, "features": bundle.features},
        "summary_features": list(SUMMARY_FEATURES),
        "n_runs": len(unique),
        "runs": unique,
        "skipped": skipped,
        "level": level_estimate(unique),
    }
    return Profile(content), warns


def save_profile(profile: Profile, path: Path) -> None:
    path.write_text(dumps_json(profile.content))


def load_profile(path: str | Path) -> Profile:
    """A profile JSON file, checked (ProfileError with one line otherwise)."""
    path = Path(path)
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ProfileError(f"{path.name}: unreadable profile ({exc})") from None
    if not isinstance(content, dict) or content.get("format") != PROFILE_FORMAT:
        raise ProfileError(f"{path.name}: not an hrpred profile (make one with hrpred profile)")
    if int(content.get("format_version", 0)) > PROFILE_VERSION:
        raise ProfileError(f"{path.name}: profile format is newer than this hrpred")
    try:
        profile = Profile(content)
        profile.summaries()
    except (KeyError, TypeError, ValueError) as exc:
        raise ProfileError(f"{path.name}: malformed profile ({exc!r})") from None
    return profile


def check_compatible(profile: Profile, bundle: Bundle) -> None:
    """The profile's summaries were made on this bundle's grid and feature path."""
    made = profile.content.get("bundle", {})
    if list(profile.content.get("summary_features", [])) != list(SUMMARY_FEATURES):
        raise ProfileError("the profile's run summaries are of another hrpred version: rebuild it")
    if float(made.get("step_s", -1)) != bundle.step_s or made.get("features") != bundle.features:
        raise ProfileError(
            f"the profile was built with another bundle (grid step {made.get('step_s')} s, this "
            f"one {bundle.step_s:g} s): rebuild it with `hrpred profile ... --bundle`"
        )


def profile_context(profile: Profile, start_time: float, k_max: int) -> tuple[Context, int, int]:
    """Context of a run starting at `start_time`: (context [1, K, C], runs used, runs left
    out because they did not start strictly before it)."""
    starts, summaries = profile.summaries()
    earlier = starts < float(start_time)
    later = int((~earlier).sum())
    ids = summaries.workout_ids[earlier]
    table = pd.DataFrame(
        {
            "workout_id": np.zeros(len(ids), dtype=np.int64),
            "hist_workout_id": ids[::-1],
            "rank": np.arange(1, len(ids) + 1, dtype=np.int64),
            "days_before": (float(start_time) - starts[earlier][::-1]) / DAY_S,
        }
    )
    ctx = build_context(np.array([0]), table, summaries, k_max)
    return ctx, int(ctx.mask.sum()), later
