"""A runner's personal profile (`hrpred profile past/*.fit -o me.json`) and its use in predict.

A profile summarises the runner's own runs WITH heart rate: each file goes through the same
path as `hrpred predict` (resampled to the bundle's grid, speed by the bundle's rules,
features by the registry). Per run it stores, over the run's valid grid steps (recorded HR
interpolated onto the grid, paused steps and implausible HR left out):
- the summary a history model reads (`hrpred.personal.summaries`: HR level, HR-per-speed
  slope, ...);
- `residuals.cold`: sum and count of recorded - cold prediction (the bundle's network without
  history), what the offset personaliser averages;
- for a history bundle, `residuals.personal`: the same for the network's personalised
  prediction, the run predicted with the profile's runs that started strictly before it as
  context, what the learned model's residual correction averages (as the evaluate stage does,
  `hrpred.evaluate.personal`), and `score_sq`: the sum over the same steps of
  ((recorded - predicted) / spread)^2, spread the network's per-step Laplace scale of that
  prediction, whose RMS (`Profile.scores`) the band's runner scale reads
  (`hrpred.uncertainty`, `evaluate.band.runner`).
Files without HR, or without a real date, are skipped with a warning. Residuals belong to the
model that made them: the profile records the bundle's fingerprint (`bundle_fingerprint`) and
predict refuses a profile of another bundle.

Predicting a run with a profile uses only the runs that started STRICTLY before it (start
times compared): their summaries as context, the K most recent first
(`hrpred.personal.context.build_context`), and their residuals for the offsets
(`hrpred.personal.offset.workout_offsets`) and, with a calibrated history bundle whose band
has a runner scale, their scores for the band's factor (`profile_runner_factor`: the band of
the personalised prediction is center -/+ q * spread * factor, as the evaluate stage scored
it); the others are left out with a warning. The profile also states an estimated personal
level (HR at 10 km/h from each run's HR-speed line) and its change over time, for the runner
to read.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from hrpred.bundle.format import dumps_json
from hrpred.bundle.runtime import Bundle
from hrpred.errors import HrpredError
from hrpred.io.activity import HR_MAX_BPM, HR_MIN_BPM, Activity
from hrpred.io.limits import MIN_TIMESTAMP_S
from hrpred.io.sport import require_running
from hrpred.io.userfiles import read_activity
from hrpred.personal.config import OffsetConfig
from hrpred.personal.context import Context, build_context
from hrpred.personal.offset import workout_offsets
from hrpred.personal.summaries import SUMMARY_FEATURES, Summaries, row_stats, summaries_from_stats
from hrpred.serve.inputs import grid_features, on_grid, resample_activity
from hrpred.serve.profile_io import (
    PROFILE_FORMAT,
    PROFILE_VERSION,
    ProfileError,
    read_profile,
    write_profile,
)
from hrpred.uncertainty import Calibration, score_sums, workout_scores

LEVEL_FEATURE = "hr_at_10kmh"  # the pace-independent level the profile reports
LEVEL_RECENT = 10  # the level is the mean over this many most recent runs
DAY_S = 86400.0
# config.json sections a prediction depends on (with the weights): the bundle fingerprint
FINGERPRINT_KEYS = ("model", "features", "scaler", "target", "history", "speed", "seq_len")

Residual = Literal["cold", "personal"]


def bundle_kind(bundle: Bundle) -> str:
    """`history` (the network reads earlier runs) or `population` (it does not)."""
    return "population" if bundle.history is None else "history"


def bundle_fingerprint(bundle: Bundle) -> str:
    """sha256 of what the bundle's predictions depend on: the weights (names, dtypes, shapes,
    bytes) and config.json's model, features, scaler, target, history, speed rules, sequence
    length and grid step. Not the personalisers' rules (k, shrink, half-life): predict applies
    the bundle's own to the stored residuals. The same digest whatever the backend (the weights
    are read from model.safetensors without torch until the PyTorch model is built)."""
    h = hashlib.sha256()
    cfg = {k: bundle.config.get(k) for k in FINGERPRINT_KEYS}
    cfg["step_s"] = bundle.step_s
    h.update(dumps_json(cfg).encode())
    for name, dtype, shape, raw in bundle.weight_records():
        h.update(f"{name}|{dtype}|{shape}|".encode())
        h.update(raw)
    return h.hexdigest()


@dataclass(frozen=True)
class Profile:
    """A loaded profile: its JSON content (`runs` sorted by start time, ids 1..R)."""

    content: dict[str, Any]

    @property
    def runs(self) -> list[dict[str, Any]]:
        return list(self.content["runs"])

    def starts(self) -> np.ndarray:
        """Start times [R] (Unix s), ascending."""
        return np.array([float(r["start_time"]) for r in self.runs], dtype=np.float64)

    def summaries(self) -> tuple[np.ndarray, Summaries]:
        """Start times [R] and the runs' summaries (ids 1..R in start order)."""
        runs = self.runs
        values = np.array(
            [[float(r["summary"][f]) for f in SUMMARY_FEATURES] for r in runs], dtype=np.float32
        ).reshape(len(runs), len(SUMMARY_FEATURES))
        valid = np.array([bool(r["valid"]) for r in runs], dtype=bool)
        ids = np.arange(1, len(runs) + 1, dtype=np.int64)
        return self.starts(), Summaries(ids, values, valid)

    def residuals(self, which: Residual) -> tuple[pd.Series, pd.Series]:
        """Per run id (1..R): sum of recorded - predicted HR over its valid steps and their
        number, of the cold or the personalised prediction (ProfileError when absent)."""
        runs = self.runs
        try:
            s = [float(r["residuals"][which]["sum"]) for r in runs]
            n = [int(r["residuals"][which]["n"]) for r in runs]
        except (KeyError, TypeError) as exc:
            raise ProfileError(
                f"the profile has no {which} residuals ({exc!r}): rebuild it with "
                "`hrpred profile ... --bundle` of this bundle"
            ) from None
        ids = pd.Index(np.arange(1, len(runs) + 1, dtype=np.int64))
        return pd.Series(s, index=ids, dtype=np.float64), pd.Series(n, index=ids, dtype=np.int64)

    def scores(self) -> pd.Series:
        """Per run id (1..R): the band's runner-scale score of the personalised prediction,
        sqrt(score_sq / n) (nan for a run without a valid step; ProfileError when absent)."""
        runs = self.runs
        try:
            sq = [float(r["residuals"]["personal"]["score_sq"]) for r in runs]
            n = [int(r["residuals"]["personal"]["n"]) for r in runs]
        except (KeyError, TypeError) as exc:
            raise ProfileError(
                f"the profile has no personalised scores ({exc!r}): rebuild it with "
                "`hrpred profile ... --bundle` of this bundle"
            ) from None
        ids = np.arange(1, len(runs) + 1, dtype=np.int64)
        return workout_scores(ids, np.array(sq, np.float64), np.array(n, np.int64))


@dataclass
class _Run:
    """A run read for the profile: its entry and the grid arrays its residuals need."""

    entry: dict[str, Any]
    features: np.ndarray  # [n_grid, F] unscaled
    hr: np.ndarray  # [n_grid] recorded HR on the grid
    ok: np.ndarray  # [n_grid] valid steps
    path: str = ""  # the file as given (ties in start time are broken by it)


def _date(ts: float) -> str:
    return datetime.fromtimestamp(float(ts), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read_run(bundle: Bundle, activity: Activity, gender: str | None) -> _Run:
    """One run's entry (without residuals) and grid arrays (ProfileError/ActivityError when it
    cannot be summarised)."""
    require_running(activity)  # a ride or a swim is skipped as such, whatever else it lacks
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
    entry = {
        "file": Path(activity.source).name,
        "start_time": start,
        "date": _date(start),
        "duration_s": float(grid.timestamp[-1] - grid.timestamp[0]),
        "distance_km": float(np.sum(grid.speed_kmh[1:] / 3.6 * grid.step_s) / 1000.0),
        "valid": True,
        "summary": {f: float(v) for f, v in zip(SUMMARY_FEATURES, s.values[0], strict=True)},
    }
    return _Run(entry, feats, hr, ok)


def _residual(run: _Run, pred: np.ndarray) -> dict[str, float | int]:
    """Sum of recorded - predicted HR over the run's valid steps, and their number."""
    err = run.hr[run.ok] - np.asarray(pred, dtype=np.float64)[run.ok]
    return {"sum": float(err.sum()), "n": int(run.ok.sum())}


def _score_sq(run: _Run, pred: np.ndarray, spread: np.ndarray) -> float:
    """Sum of ((recorded - predicted) / spread)^2 over the run's valid steps."""
    sq, _ = score_sums(run.hr[None], np.asarray(pred)[None], np.asarray(spread)[None], run.ok[None])
    return float(sq[0])


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
    bundle: Bundle,
    files: Sequence[str | Path],
    gender: str | None = None,
    progress: Callable[[], None] | None = None,
) -> tuple[Profile, list[str]]:
    """Profile of the runner's files for this bundle (any kind); skipped files are listed in
    the warnings. Each run is predicted cold and, with a history bundle, personalised with the
    kept runs that started before it (residual and band score, see the module doc). The same
    files in any order give the same profile: they are read in path order, and of two runs
    with the same start time the first path is kept. `progress` is called after each file."""
    read: list[_Run] = []
    skipped: list[dict[str, str]] = []
    warns: list[str] = []
    for name in sorted(map(str, files)):
        base = Path(name).name
        try:
            run = _read_run(bundle, read_activity(name), gender)
            run.path = name
            read.append(run)
        except (HrpredError, ValueError, OSError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            reason = reason.removeprefix(f"{base}: ")
            skipped.append({"file": base, "reason": reason})
            warns.append(f"{base}: skipped ({reason})")
        if progress is not None:
            progress()
    read.sort(key=lambda r: (r.entry["start_time"], r.path))
    kept: list[_Run] = []
    for r in read:
        if kept and kept[-1].entry["start_time"] == r.entry["start_time"]:
            first = kept[-1]
            skipped.append(
                {"file": r.entry["file"], "reason": f"same start as {first.entry['file']}"}
            )
            warns.append(f"{r.path}: skipped (same start time as {first.path})")
            continue
        kept.append(r)
    runs = [r.entry for r in kept]
    content = {
        "format": PROFILE_FORMAT,
        "format_version": PROFILE_VERSION,
        "bundle": {
            "step_s": bundle.step_s,
            "features": bundle.features,
            "kind": bundle_kind(bundle),
            "fingerprint": bundle_fingerprint(bundle),
        },
        "summary_features": list(SUMMARY_FEATURES),
        "n_runs": len(runs),
        "runs": runs,
        "skipped": skipped,
        "level": level_estimate(runs),
    }
    profile = Profile(content)
    for r in kept:
        r.entry["residuals"] = {"cold": _residual(r, bundle.predict(r.features))}
    if bundle.history is not None:
        k_max = int(bundle.history["k_max"])
        for r in kept:  # the context reads summaries only: the residuals' order is free
            ctx, _, _ = profile_context(profile, r.entry["start_time"], k_max)
            pred, spread = bundle.predict_spread(r.features, context=(ctx.values[0], ctx.mask[0]))
            r.entry["residuals"]["personal"] = {
                **_residual(r, pred),
                "score_sq": _score_sq(r, pred, spread),
            }
    return profile, warns


def save_profile(profile: Profile, path: Path) -> None:
    """Write the profile atomically (`hrpred.serve.profile_io.write_profile`)."""
    write_profile(profile.content, path)


def load_profile(path: str | Path) -> Profile:
    """A profile JSON file, checked field by field (`hrpred.serve.profile_io.read_profile`;
    ProfileError with one line naming the file and the field otherwise)."""
    return Profile(read_profile(path))


def check_compatible(profile: Profile, bundle: Bundle) -> None:
    """The profile was built with this bundle: same summaries, grid and features, and the
    same model (fingerprint), so its residuals are this model's."""
    made = profile.content.get("bundle", {})
    if list(profile.content.get("summary_features", [])) != list(SUMMARY_FEATURES):
        raise ProfileError("the profile's run summaries are of another hrpred version: rebuild it")
    if list(made.get("features", [])) != list(bundle.features):
        mine, theirs = list(made.get("features", [])), list(bundle.features)
        diff = sorted(set(mine) ^ set(theirs))
        what = f"{', '.join(diff[:4])}{'...' if len(diff) > 4 else ''}" if diff else "their order"
        raise ProfileError(
            f"the profile was built with another bundle: its features differ ({what}; "
            f"{len(mine)} features, this one {len(theirs)}): rebuild it with "
            "`hrpred profile ... --bundle`"
        )
    step = float(made.get("step_s", -1))
    if not math.isclose(step, bundle.step_s, rel_tol=1e-9, abs_tol=1e-12):
        raise ProfileError(
            f"the profile was built with another bundle (grid step {step:.6g} s, this one "
            f"{bundle.step_s:.6g} s): rebuild it with `hrpred profile ... --bundle`"
        )
    mine = str(made.get("fingerprint", ""))
    theirs = bundle_fingerprint(bundle)
    if mine != theirs:
        raise ProfileError(
            f"the profile was built with another model (bundle fingerprint {mine[:12]}, this "
            f"one {theirs[:12]}): its residuals do not apply; rebuild it with "
            "`hrpred profile ... --bundle` of this bundle"
        )


def earlier_runs(profile: Profile, start_time: float) -> tuple[pd.DataFrame, int]:
    """History table of a run starting at `start_time` (workout_id 0; hist_workout_id = the
    profile's run ids, rank 1 = most recent, days_before) over the runs that started strictly
    before it, and the number of runs left out (started at or after it)."""
    starts = np.asarray(profile.starts(), dtype=np.float64)
    earlier = starts < float(start_time)
    ids = np.arange(1, len(starts) + 1, dtype=np.int64)[earlier]
    table = pd.DataFrame(
        {
            "workout_id": np.zeros(len(ids), dtype=np.int64),
            "hist_workout_id": ids[::-1],
            "rank": np.arange(1, len(ids) + 1, dtype=np.int64),
            "days_before": (float(start_time) - starts[earlier][::-1]) / DAY_S,
        }
    )
    return table, int((~earlier).sum())


def profile_context(profile: Profile, start_time: float, k_max: int) -> tuple[Context, int, int]:
    """Context of a run starting at `start_time`: (context [1, K, C], runs used, runs left
    out because they did not start strictly before it)."""
    _, summaries = profile.summaries()
    table, later = earlier_runs(profile, start_time)
    ctx = build_context(np.array([0]), table, summaries, k_max)
    return ctx, int(ctx.mask.sum()), later


def profile_offset(
    profile: Profile, start_time: float, cfg: OffsetConfig, which: Residual
) -> tuple[float, int]:
    """Offset (BPM) of a run starting at `start_time` by `cfg`'s rule over the `which`
    residuals of the runs that started strictly before it, and the number of runs it read
    (the `cfg.k` most recent with valid steps)."""
    table, _ = earlier_runs(profile, start_time)
    s, n = profile.residuals(which)
    offset = workout_offsets(cfg, table, s, n, np.array([0]))[0]
    used = table[table["rank"] <= cfg.k]["hist_workout_id"].to_numpy()
    return float(offset), int((n.reindex(used).fillna(0).to_numpy() > 0).sum())


def profile_runner_factor(
    profile: Profile, start_time: float, cal: Calibration
) -> tuple[float, int]:
    """The band's runner-scale factor of a run starting at `start_time`
    (`Calibration.factors`: 1 + rule(score - ref) / ref over the scores of the runs that
    started strictly before it; 1 when the calibration has no runner scale or no such run
    has a valid step), and the number of runs it read (the rule's `k` most recent with a
    score)."""
    rule = cal.runner_rule()
    if rule is None:
        return 1.0, 0
    table, _ = earlier_runs(profile, start_time)
    scores = profile.scores()
    factor = cal.factors(table, scores, np.array([0]))[0]
    used = table[table["rank"] <= rule[0].k]["hist_workout_id"].to_numpy()
    return float(factor), int(scores.reindex(used).notna().sum())
