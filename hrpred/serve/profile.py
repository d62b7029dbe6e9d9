"""A runner's personal profile (`hrpred profile past/*.fit -o me.json`) and its use in predict.

A profile summarises the runner's own runs WITH heart rate: each file goes through the same
path as `hrpred predict` (resampled to the bundle's grid, speed by the bundle's rules,
features by the registry). The runs are then personalised one by one in start order, each
with the runs before it, by the engine evaluate scores with (`hrpred.personal.engine` through
`hrpred.serve.personalise`), and each run stores:
- `summary`: what a history network reads about it (`hrpred.personal.summaries`);
- `record`: what it leaves for the runs after it, over its valid grid steps (recorded HR
  interpolated onto the grid, paused steps and implausible HR left out): the valid steps `n`,
  the sums of recorded - population prediction (`cold_sum`) and - the network's prediction
  with its own context (`learned_sum`), the band score `score_sq`, and each predictor's
  absolute error as served for it (`abs_sum`: population, offset, learned);
- `plan`: how it was personalised (earlier runs, the level change found, offset, residual
  correction, headline weights), for the runner to read.
Files without HR, or without a real date, are skipped with a warning. Records belong to the
model that made them: the profile records the bundle's fingerprint (`bundle_fingerprint`) and
predict refuses a profile of another bundle.

Predicting a run with a profile uses only the runs that started STRICTLY before it (start
times compared; the bundle's `history_runs` most recent): `hrpred.serve.personalise` makes its
plan from their records and reads the summaries of those after the latest level change as the
network's context; the others are left out with a warning. The profile also states an
estimated personal level (HR at 10 km/h from each run's HR-speed line) and its change over
time, for the runner to read.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hrpred.bundle.format import dumps_json
from hrpred.bundle.runtime import Bundle
from hrpred.io.exports import RunSource
from hrpred.personal.engine import PREDICTORS, Plan, RunRecord, record_run
from hrpred.personal.summaries import SUMMARY_FEATURES, Summaries
from hrpred.serve.drift import decoupling
from hrpred.serve.limits import MAX_PROFILE_RUNS
from hrpred.serve.personalise import Personalised, earlier_runs, personalise
from hrpred.serve.profile_io import (
    PROFILE_FORMAT,
    PROFILE_VERSION,
    ProfileError,
    read_profile,
    write_profile,
)
from hrpred.serve.profile_read import ReadConfig, ReadRun, clip, date_text, item_name, read_runs

LEVEL_FEATURE = "hr_at_10kmh"  # the pace-independent level the profile reports
LEVEL_RECENT = 10  # the level is the mean over this many most recent runs
DAY_S = 86400.0
# config.json sections a prediction depends on (with the weights): the bundle fingerprint
FINGERPRINT_KEYS = ("model", "features", "scaler", "target", "history", "speed", "seq_len")


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

    def records(self) -> list[RunRecord]:
        """Each run's record (in run order; ProfileError when one is absent or malformed)."""
        out = []
        for i, r in enumerate(self.runs):
            try:
                rec = r["record"]
                out.append(
                    RunRecord(
                        start_s=float(r["start_time"]),
                        n=int(rec["n"]),
                        cold_sum=float(rec["cold_sum"]),
                        learned_sum=float(rec["learned_sum"]),
                        score_sq=float(rec["score_sq"]),
                        abs_sum=tuple(float(rec["abs_sum"][p]) for p in PREDICTORS),
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ProfileError(
                    f"runs[{i}].record is missing or malformed ({exc!r}): rebuild it with "
                    "`hrpred profile ... --bundle` of this bundle"
                ) from None
        return out

    def personalise(
        self,
        bundle: Bundle,
        start_s: float,
        features: np.ndarray,
        population: np.ndarray,
        population_spread: np.ndarray,
        runner_ref: float | None = None,
    ) -> tuple[Personalised, int]:
        """A run starting at `start_s` personalised from the profile's runs that started
        strictly before it (the bundle's `history_runs` most recent), and the number of runs
        left out because they did not."""
        starts, summaries = self.summaries()
        earlier = earlier_runs(starts, start_s, bundle.history_runs)
        later = int((starts >= float(start_s)).sum())
        result = personalise(
            bundle, summaries, starts, self.records(), earlier, start_s, features,
            population, population_spread, runner_ref,
        )  # fmt: skip
        return result, later


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
        "first_date": date_text(t[0]),
        "last_date": date_text(t[-1]),
        "trend_bpm_per_30_days": None,
    }
    days = (t - t[0]) / DAY_S
    if len(runs) >= 2 and days[-1] >= 1.0:
        slope = np.polyfit(days, lv, 1)[0]
        out["trend_bpm_per_30_days"] = round(float(slope * 30.0), 2)
    return out


def build_profile(
    bundle: Bundle,
    files: Sequence[str | Path | RunSource],
    gender: str | None = None,
    progress: Callable[[], None] | None = None,
    workers: int = 1,
) -> tuple[Profile, list[str]]:
    """Profile of the runner's files, or runs of an export (`hrpred.io.exports.RunSource`,
    read one at a time; each run's entry records its `source`), for this bundle (any kind);
    skipped files are listed in the warnings. Each run is predicted cold and, with a history
    bundle, personalised with the kept runs that started before it (residual and band score,
    see the module doc). The same files in any order give the same profile: they are read in
    name order, and of two runs with the same start time the first name is kept (a duplicate
    when they last as long). `progress` is called after each file. The files are read by
    `workers` processes (`hrpred.serve.profile_read`): the same profile for any number."""
    read: list[ReadRun] = []
    skipped: list[dict[str, str]] = []
    warns: list[str] = []
    cfg = ReadConfig(bundle.step_s, bundle.speed, tuple(bundle.features), gender)
    items = sorted(files, key=item_name)
    for item, (run, reason) in zip(items, read_runs(cfg, items, workers), strict=True):
        name = item_name(item)
        base = Path(name).name
        if run is not None:
            run.path = name
            read.append(run)
        else:
            reason = reason.removeprefix(f"{name}: ").removeprefix(f"{base}: ")
            skipped.append({"file": clip(base), "reason": clip(reason)})
            shown = name if isinstance(item, RunSource) else base  # a member: where it is
            warns.append(f"{shown}: skipped ({reason})")
        if progress is not None:
            progress()
    read.sort(key=lambda r: (r.entry["start_time"], r.path))
    kept: list[ReadRun] = []
    for r in read:
        if kept and kept[-1].entry["start_time"] == r.entry["start_time"]:
            first = kept[-1]
            same = first.entry["duration_s"] == r.entry["duration_s"]
            what = "a duplicate of" if same else "same start as"
            reason = clip(f"{what} {first.entry['file']}")
            skipped.append({"file": r.entry["file"], "reason": reason})
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
        "skipped": skipped[:MAX_PROFILE_RUNS],
        "level": level_estimate(runs),
    }
    profile = Profile(content)
    starts, summaries = profile.summaries()
    records: list[RunRecord] = []
    for i, r in enumerate(kept):  # in start order: each run's record feeds the runs after it
        start = r.entry["start_time"]
        pop, pop_spread = bundle.predict_spread(r.features)
        earlier = earlier_runs(starts[:i], start, bundle.history_runs)
        done = personalise(bundle, summaries, starts, records, earlier, start, r.features,
                           np.asarray(pop, np.float64), pop_spread)  # fmt: skip
        rec = record_run(start, r.hr, r.ok, done.curves, done.network, done.spread)
        records.append(rec)
        r.entry["record"] = record_json(rec)
        r.entry["plan"] = plan_json(done.plan, done.context_runs)
        r.entry["drift"] = decoupling(r.t, r.hr, r.ok, np.asarray(pop, np.float64), r.speed)
    return profile, warns


def record_json(rec: RunRecord) -> dict[str, Any]:
    """A run's record as stored in the profile."""
    return {
        "n": rec.n,
        "cold_sum": rec.cold_sum,
        "learned_sum": rec.learned_sum,
        "score_sq": rec.score_sq,
        "abs_sum": dict(zip(PREDICTORS, rec.abs_sum, strict=True)),
    }


def plan_json(plan: Plan, context_runs: int) -> dict[str, Any]:
    """How a run was personalised, as stored in the profile (and shown by predict)."""
    return {
        "earlier_runs": plan.earlier,
        "used_runs": plan.used,
        "context_runs": context_runs,
        "change": {
            "found": plan.change.found,
            "runs_since": plan.change.runs_since if plan.change.found else None,
            "shift_bpm": round(plan.change.shift_bpm, 3),
        },
        "offset_bpm": round(plan.offset, 4),
        "residual_bpm": round(plan.residual, 4),
        "weights": dict(zip(PREDICTORS, (round(w, 6) for w in plan.weights), strict=True)),
    }


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
