"""Profile files (`hrpred profile -o me.json`) read as untrusted input and written atomically.

A profile comes back from the runner, who may have edited, truncated or swapped it, so
`read_profile` trusts nothing in it:
1. the path must be a readable regular file (`hrpred.io.userfiles.check_regular_file`: no
   FIFO is opened, no device read) of at most MAX_PROFILE_BYTES, checked before reading and
   again while reading;
2. brackets may nest at most MAX_PROFILE_DEPTH deep, counted before `json` builds anything;
3. the JSON literals NaN and Infinity are read as what they are and refused by the schema,
   integers longer than MAX_INT_DIGITS digits are read as floats (never a 10^400 int);
4. format and version: another file or another hrpred's profile is refused as such;
5. every field against `PROFILE_SCHEMA` (types, finite numbers in plausible ranges, text
   lengths, list lengths) and the constraints between fields in `PROFILE_RULES` (`n_runs` is
   the number of runs, runs in start order, each run's summary has the profile's summary
   features, each run's record's sums within the HR range times their step count).
Any violation is a ProfileError of one line naming the file and the field:
`me.json: runs[3].record.cold_sum is not a finite number: rebuild it with hrpred profile`.

`write_profile` checks the content against the same schema (never write what would be
refused) and writes it through `hrpred.io.atomic.write_atomic`: a failed write leaves the
previous profile intact.

The schema is data: each field is a `Spec` of `hrpred.io.jsonspec` (`Number`, `Integer`,
`Text`, `Flag`, `Const`, `ListOf`, `MapOf`, `Record`). To add a field to the format, add it to the `Record` that holds
it (to `optional` when profiles without it stay valid) and, for a constraint between fields,
a function to PROFILE_RULES; bump PROFILE_VERSION when older profiles cannot be used.
tests/test_profile_io.py builds a profile and reads it back, so a field written but missing
from the schema fails there.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hrpred.bundle.format import dumps_json
from hrpred.errors import HrpredError
from hrpred.io.activity import HR_MAX_BPM
from hrpred.io.atomic import write_atomic
from hrpred.io.jsonspec import (
    MAX_NAME_CHARS,
    Const,
    Flag,
    Integer,
    Invalid,
    ListOf,
    MapOf,
    Number,
    Record,
    Text,
    nesting_depth,
)
from hrpred.io.limits import MAX_DURATION_S, MIN_TIMESTAMP_S, SPEED_RANGE_KMH
from hrpred.io.userfiles import check_regular_file
from hrpred.personal.engine import PREDICTORS
from hrpred.serve.limits import MAX_PROFILE_BYTES, MAX_PROFILE_DEPTH, MAX_PROFILE_RUNS

PROFILE_FORMAT = "hrpred-profile"
PROFILE_VERSION = 4  # 2: residuals + fingerprint; 3: + score_sq; 4: engine records + plans
REBUILD = "rebuild it with hrpred profile"

MAX_INT_DIGITS = 18  # longer integer literals are read as floats (and refused where ints go)
# Plausible ranges of the values a profile holds
MAX_TIMESTAMP_S = 4_102_444_800.0  # 2100-01-01: later start times are corrupt
MAX_RUN_STEPS = 10_000_000  # grid steps of one run (24 h at 8.6 ms)
MAX_SCORE = 1000.0  # a run's RMS error in units of the predicted spread
# a run's mean error (recorded - predicted): HR is within 25-250 BPM, a prediction is the
# network's output (not clipped): generous, so that no profile a bundle builds is refused
MAX_RESIDUAL_BPM = 1000.0
SUMMARY_BOUND = 1.0e4  # any summary value (HR at 10 km/h extrapolates to +-4,050 at most)


class ProfileError(HrpredError, ValueError):
    """A profile that cannot be built, read or used with this bundle (one line)."""


# --------------------------------------------------------------------------- the schema

DATE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
SUM_BOUND = MAX_RESIDUAL_BPM * MAX_RUN_STEPS
PREDICTOR_SUMS = Record({p: Number(0.0, SUM_BOUND) for p in PREDICTORS})
RECORD = Record(  # hrpred.personal.engine.RunRecord as the profile stores it
    {"n": Integer(0, MAX_RUN_STEPS), "cold_sum": Number(-SUM_BOUND, SUM_BOUND),
     "learned_sum": Number(-SUM_BOUND, SUM_BOUND),
     "score_sq": Number(0.0, MAX_SCORE**2 * MAX_RUN_STEPS), "abs_sum": PREDICTOR_SUMS},
)  # fmt: skip
WEIGHTS = Record({p: Number(0.0, 1.0) for p in PREDICTORS})
PLAN = Record(  # how the run was personalised (for the runner to read; predict recomputes)
    {
        "earlier_runs": Integer(0, MAX_PROFILE_RUNS),
        "used_runs": Integer(0, MAX_PROFILE_RUNS),
        "context_runs": Integer(0, MAX_PROFILE_RUNS),
        "change": Record(
            {
                "found": Flag(),
                "runs_since": Number(0, MAX_PROFILE_RUNS, nullable=True),
                "shift_bpm": Number(-MAX_RESIDUAL_BPM, MAX_RESIDUAL_BPM),
            }
        ),  # fmt: skip
        "offset_bpm": Number(-MAX_RESIDUAL_BPM, MAX_RESIDUAL_BPM),
        "residual_bpm": Number(-MAX_RESIDUAL_BPM, MAX_RESIDUAL_BPM),
        "weights": WEIGHTS,
    }
)
RUN = Record(
    {
        "file": Text(),
        "start_time": Number(MIN_TIMESTAMP_S, MAX_TIMESTAMP_S),
        "date": Text(20, pattern=DATE),
        "duration_s": Number(0.0, MAX_DURATION_S),
        "distance_km": Number(0.0, MAX_DURATION_S / 3600.0 * SPEED_RANGE_KMH[1]),
        "valid": Flag(),
        "summary": MapOf(Number(-SUMMARY_BOUND, SUMMARY_BOUND), max_items=256),
        "record": RECORD,
        "plan": PLAN,
    },
    optional={
        "source": Text(),  # the export member the run was read from
        "drift": Record(  # its decoupling (hrpred.serve.drift)
            {
                "model_bpm": Number(-MAX_RESIDUAL_BPM, MAX_RESIDUAL_BPM, nullable=True),
                "pa_hr_pct": Number(-1.0e6, 1.0e6, nullable=True),
            }
        ),  # fmt: skip
    },
)
LEVEL = Record(
    {"runs": Integer(0, MAX_PROFILE_RUNS)},
    optional={
        "feature": Text(MAX_NAME_CHARS),
        "meaning": Text(),
        "level_bpm": Number(-SUMMARY_BOUND, SUMMARY_BOUND),
        "level_runs": Integer(0, MAX_PROFILE_RUNS),
        "level_all_runs_bpm": Number(-SUMMARY_BOUND, SUMMARY_BOUND),
        "first_date": Text(20, pattern=DATE),
        "last_date": Text(20, pattern=DATE),
        "trend_bpm_per_30_days": Number(-1.0e6, 1.0e6, nullable=True),
    },
)
PROFILE_SCHEMA = Record(
    {
        "format": Const(PROFILE_FORMAT),
        "format_version": Const(PROFILE_VERSION),
        "bundle": Record(
            {
                "step_s": Number(1.0e-3, 3600.0),
                "features": ListOf(Text(MAX_NAME_CHARS), 1000),
                "kind": Text(choices=("population", "history")),
                "fingerprint": Text(64, pattern="[0-9a-f]{64}"),
            }
        ),
        "summary_features": ListOf(Text(MAX_NAME_CHARS), 256),
        "n_runs": Integer(0, MAX_PROFILE_RUNS),
        "runs": ListOf(RUN, MAX_PROFILE_RUNS),
        "skipped": ListOf(Record({"file": Text(), "reason": Text()}), MAX_PROFILE_RUNS),
        "level": LEVEL,
    }
)
# plausible ranges of the summary features (hrpred.personal.summaries); others: SUMMARY_BOUND
SUMMARY_RANGES = {
    "hr_mean": (0.0, HR_MAX_BPM),
    "hr_std": (0.0, HR_MAX_BPM),
    "speed_mean": (0.0, SPEED_RANGE_KMH[1]),
    "speed_std": (0.0, SPEED_RANGE_KMH[1]),
    "hr_speed_slope": (-20.0, 20.0),
    "climb_per_step": (0.0, SUMMARY_BOUND),
    "log_steps": (0.0, math.log1p(MAX_RUN_STEPS)),
    "frac_valid": (0.0, 1.0),
}

Problems = Iterator[tuple[str, str]]


def _counts(c: dict[str, Any]) -> Problems:
    if c["n_runs"] != len(c["runs"]):
        yield "n_runs", f"is {c['n_runs']} but runs has {len(c['runs'])} entries"


def _start_order(c: dict[str, Any]) -> Problems:
    starts = [r["start_time"] for r in c["runs"]]
    for i in range(1, len(starts)):
        if not starts[i] > starts[i - 1]:
            at = f"runs[{i}].start_time"
            yield at, f"is not after runs[{i - 1}]'s (runs are in start order)"


def _summaries(c: dict[str, Any]) -> Problems:
    names = c["summary_features"]
    if len(set(names)) != len(names):
        yield "summary_features", "names a feature twice"
    for i, run in enumerate(c["runs"]):
        if sorted(run["summary"]) != sorted(names):
            yield f"runs[{i}].summary", f"does not have the {len(names)} summary_features"
        for name, value in run["summary"].items():
            lo, hi = SUMMARY_RANGES.get(name, (-SUMMARY_BOUND, SUMMARY_BOUND))
            if not lo <= value <= hi:
                at = f"runs[{i}].summary.{name}"
                yield at, f"is {value:.6g}, outside the plausible {lo:g}..{hi:g}"


def _records(c: dict[str, Any]) -> Problems:
    for i, run in enumerate(c["runs"]):
        r, at = run["record"], f"runs[{i}].record"
        for key in ("cold_sum", "learned_sum"):
            if abs(r[key]) > MAX_RESIDUAL_BPM * r["n"]:
                yield f"{at}.{key}", f"is {r[key]:.6g}: more than {MAX_RESIDUAL_BPM:g} BPM per step"
        for p, value in r["abs_sum"].items():
            if value > MAX_RESIDUAL_BPM * r["n"]:
                yield (
                    f"{at}.abs_sum.{p}",
                    f"is {value:.6g}: more than {MAX_RESIDUAL_BPM:g} BPM per step",
                )
        if r["score_sq"] > MAX_SCORE**2 * r["n"]:
            yield f"{at}.score_sq", f"is {r['score_sq']:.6g}: implausible for {r['n']} steps"


PROFILE_RULES: tuple[Callable[[dict[str, Any]], Problems], ...] = (
    _counts,
    _start_order,
    _summaries,
    _records,
)


def check_profile(content: Any, name: str) -> None:
    """ProfileError (one line naming `name` and the field) unless `content` is a valid
    profile of this format: every field by PROFILE_SCHEMA, then PROFILE_RULES."""
    try:
        PROFILE_SCHEMA.check(content, "")
    except Invalid as bad:
        raise ProfileError(f"{name}: {bad.path} {bad.problem}: {REBUILD}") from None
    for rule in PROFILE_RULES:
        for path, problem in rule(content):
            raise ProfileError(f"{name}: {path} {problem}: {REBUILD}")


# --------------------------------------------------------------------------- reading


def _int(text: str) -> int | float:
    return int(text) if len(text.lstrip("-")) <= MAX_INT_DIGITS else float(text)


def parse_profile_json(data: bytes, name: str) -> Any:
    """The JSON value of a profile file's bytes: depth-checked before parsing, NaN and
    Infinity as floats (the schema refuses them), long integers as floats."""
    if json.detect_encoding(data) not in ("utf-8", "utf-8-sig"):
        raise ProfileError(f"{name}: unreadable profile (not UTF-8 text): {REBUILD}")
    if nesting_depth(data, stop=MAX_PROFILE_DEPTH) > MAX_PROFILE_DEPTH:
        raise ProfileError(
            f"{name}: nested more than {MAX_PROFILE_DEPTH} levels deep: not an hrpred profile"
        )
    try:
        return json.loads(data, parse_int=_int, parse_constant=float)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ProfileError(f"{name}: unreadable profile ({text})") from None


def read_profile(path: str | Path) -> dict[str, Any]:
    """A profile file's content, checked (ProfileError with one line otherwise)."""
    path = Path(path)
    name = path.name or str(path)
    st = check_regular_file(path, ProfileError)
    too_big = ProfileError(
        f"{name}: more than {MAX_PROFILE_BYTES // 2**20} MB: not an hrpred profile (the limit "
        "of hrpred.serve.limits.MAX_PROFILE_BYTES)"
    )
    if st.st_size > MAX_PROFILE_BYTES:
        raise too_big
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PROFILE_BYTES + 1)
    except OSError as exc:
        raise ProfileError(f"{name}: unreadable profile ({exc.strerror or exc})") from None
    if len(data) > MAX_PROFILE_BYTES:
        raise too_big
    content = parse_profile_json(data, name)
    del data
    _check_version(content, name)
    check_profile(content, name)
    return content


def _check_version(content: Any, name: str) -> None:
    """ProfileError for another file or another hrpred's profile."""
    if not isinstance(content, dict) or content.get("format") != PROFILE_FORMAT:
        raise ProfileError(f"{name}: not an hrpred profile (make one with hrpred profile)")
    version = content.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ProfileError(f"{name}: format_version is not an integer: {REBUILD}")
    if version > PROFILE_VERSION:
        raise ProfileError(f"{name}: profile format is newer than this hrpred")
    if version < PROFILE_VERSION:
        raise ProfileError(
            f"{name}: profile format {version} is older than this hrpred's ({PROFILE_VERSION}): "
            f"{REBUILD}"
        )


# --------------------------------------------------------------------------- writing


def write_profile(content: dict[str, Any], path: str | Path) -> None:
    """Write a profile atomically (the previous file intact on failure); ProfileError when
    the content breaks the schema (a bug: never write what `read_profile` refuses)."""
    path = Path(path)
    try:
        check_profile(content, path.name)
    except ProfileError as exc:
        raise ProfileError(f"the profile built is invalid, not written: {exc}") from None
    text = dumps_json(content)
    write_atomic(path, lambda handle: handle.write(text))
