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
   features, residual sums within the HR range times their step count, the personalised
   residuals of a history profile).
Any violation is a ProfileError of one line naming the file and the field:
`me.json: runs[3].residuals.cold.sum is not a finite number: rebuild it with hrpred profile`.

`write_profile` checks the content against the same schema (never write what would be
refused) and writes it through `hrpred.io.atomic.write_atomic`: a failed write leaves the
previous profile intact.

The schema is data: each field is a `Spec` (`Number`, `Integer`, `Text`, `Flag`, `Const`,
`ListOf`, `MapOf`, `Record`). To add a field to the format, add it to the `Record` that holds
it (to `optional` when profiles without it stay valid) and, for a constraint between fields,
a function to PROFILE_RULES; bump PROFILE_VERSION when older profiles cannot be used.
tests/test_profile_io.py builds a profile and reads it back, so a field written but missing
from the schema fails there.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hrpred.bundle.format import dumps_json
from hrpred.errors import HrpredError
from hrpred.io.activity import HR_MAX_BPM
from hrpred.io.atomic import write_atomic
from hrpred.io.limits import MAX_DURATION_S, MIN_TIMESTAMP_S, SPEED_RANGE_KMH
from hrpred.io.userfiles import check_regular_file
from hrpred.serve.limits import MAX_PROFILE_BYTES, MAX_PROFILE_DEPTH, MAX_PROFILE_RUNS

PROFILE_FORMAT = "hrpred-profile"
PROFILE_VERSION = 3  # 2: per-run residuals + the bundle's fingerprint; 3: + score_sq
REBUILD = "rebuild it with hrpred profile"

MAX_INT_DIGITS = 18  # longer integer literals are read as floats (and refused where ints go)
# Plausible ranges of the values a profile holds
MAX_TIMESTAMP_S = 4_102_444_800.0  # 2100-01-01: later start times are corrupt
MAX_RUN_STEPS = 10_000_000  # grid steps of one run (24 h at 8.6 ms)
MAX_SCORE = 1000.0  # a run's RMS error in units of the predicted spread
# a run's mean error (recorded - predicted): HR is within 25-250 BPM, a prediction is the
# network's output (not clipped): generous, so that no profile a bundle builds is refused
MAX_RESIDUAL_BPM = 1000.0
MAX_TEXT_CHARS = 1000  # a file name or a reason
MAX_NAME_CHARS = 64  # a feature's name
SUMMARY_BOUND = 1.0e4  # any summary value (HR at 10 km/h extrapolates to +-4,050 at most)


class ProfileError(HrpredError, ValueError):
    """A profile that cannot be built, read or used with this bundle (one line)."""


class _Invalid(Exception):
    """A field that breaks the schema: its path and what is wrong with it."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path} {problem}")
        self.path, self.problem = path, problem


def _kind(value: Any) -> str:
    """What a JSON value is, for a message: a number is shown, anything else named."""
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.6g}"
    return {bool: "true/false", str: "a text", list: "a list", dict: "an object"}.get(
        type(value), type(value).__name__
    )


# --------------------------------------------------------------------------- the specs


class Spec:
    """A field's type and range; `check` raises _Invalid(path, problem) on the first fault."""

    def check(self, value: Any, path: str) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class Number(Spec):
    """A finite number (int or float, not true/false) within lo..hi; None too if nullable."""

    lo: float
    hi: float
    nullable: bool = False

    def check(self, value: Any, path: str) -> None:
        if type(value) in (float, int) and self.lo <= value <= self.hi:
            return  # the common case, fast (NaN fails the comparison)
        if value is None and self.nullable:
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Invalid(path, f"is not a number ({_kind(value)})")
        if isinstance(value, float) and not math.isfinite(value):
            raise _Invalid(path, "is not a finite number")
        if not self.lo <= value <= self.hi:
            raise _Invalid(path, f"is {value:.6g}, outside the plausible {self.lo:g}..{self.hi:g}")


@dataclass(frozen=True)
class Integer(Spec):
    """An integer (not a float, not true/false) within lo..hi."""

    lo: int
    hi: int

    def check(self, value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(path, f"is not an integer ({_kind(value)})")
        if not self.lo <= value <= self.hi:
            raise _Invalid(path, f"is {value}, outside {self.lo:,}..{self.hi:,}")


@dataclass(frozen=True)
class Text(Spec):
    """A string of at most `max_chars`, one of `choices` or matching `pattern` if given."""

    max_chars: int = MAX_TEXT_CHARS
    choices: tuple[str, ...] = ()
    pattern: str = ""

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, str):
            raise _Invalid(path, f"is not a text ({_kind(value)})")
        if len(value) > self.max_chars:
            raise _Invalid(path, f"is longer than {self.max_chars} characters")
        if self.choices and value not in self.choices:
            raise _Invalid(path, f"is not one of {', '.join(self.choices)}")
        if self.pattern and not re.fullmatch(self.pattern, value):
            raise _Invalid(path, "is not in the expected form")


@dataclass(frozen=True)
class Flag(Spec):
    """true or false."""

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, bool):
            raise _Invalid(path, f"is not true/false ({_kind(value)})")


@dataclass(frozen=True)
class Const(Spec):
    """Exactly this value (same type)."""

    value: Any

    def check(self, value: Any, path: str) -> None:
        if type(value) is not type(self.value) or value != self.value:
            raise _Invalid(path, f"is not {self.value!r}")


@dataclass(frozen=True)
class ListOf(Spec):
    """A list of at most `max_items` items, each `item`."""

    item: Spec
    max_items: int

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, list):
            raise _Invalid(path, f"is not a list ({_kind(value)})")
        if len(value) > self.max_items:
            raise _Invalid(path, f"has {len(value):,} items, more than {self.max_items:,}")
        for i, item in enumerate(value):
            self.item.check(item, f"{path}[{i}]")


@dataclass(frozen=True)
class MapOf(Spec):
    """An object of at most `max_items` keys (texts of `key_chars` at most), each value
    `value` (the per-run summary: feature name -> number)."""

    value: Spec
    max_items: int
    key_chars: int = MAX_NAME_CHARS

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise _Invalid(path, f"is not an object ({_kind(value)})")
        if len(value) > self.max_items:
            raise _Invalid(path, f"has {len(value):,} entries, more than {self.max_items:,}")
        for key, item in value.items():
            if len(key) > self.key_chars:
                raise _Invalid(path, f"has a key longer than {self.key_chars} characters")
            self.value.check(item, f"{path}.{key}")


@dataclass(frozen=True)
class Record(Spec):
    """An object with exactly these fields: every one of `fields`, any of `optional`, no
    other."""

    fields: Mapping[str, Spec]
    optional: Mapping[str, Spec] = field(default_factory=dict)

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise _Invalid(path, f"is not an object ({_kind(value)})")
        at = f"{path}." if path else ""
        for key, spec in self.fields.items():
            if key not in value:
                raise _Invalid(f"{at}{key}", "is missing")
            spec.check(value[key], f"{at}{key}")
        for key, item in value.items():
            if key in self.fields:
                continue
            if key not in self.optional:
                shown = key if len(key) <= MAX_NAME_CHARS else key[:MAX_NAME_CHARS] + "..."
                raise _Invalid(f"{at}{shown}", "is not a field of a profile")
            self.optional[key].check(item, f"{at}{key}")


# --------------------------------------------------------------------------- the schema

DATE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
RESIDUAL = Record(
    {"sum": Number(-MAX_RESIDUAL_BPM * MAX_RUN_STEPS, MAX_RESIDUAL_BPM * MAX_RUN_STEPS),
     "n": Integer(0, MAX_RUN_STEPS)},
    optional={"score_sq": Number(0.0, MAX_SCORE**2 * MAX_RUN_STEPS)},
)  # fmt: skip
RUN = Record(
    {
        "file": Text(),
        "start_time": Number(MIN_TIMESTAMP_S, MAX_TIMESTAMP_S),
        "date": Text(20, pattern=DATE),
        "duration_s": Number(0.0, MAX_DURATION_S),
        "distance_km": Number(0.0, MAX_DURATION_S / 3600.0 * SPEED_RANGE_KMH[1]),
        "valid": Flag(),
        "summary": MapOf(Number(-SUMMARY_BOUND, SUMMARY_BOUND), max_items=256),
        "residuals": Record({"cold": RESIDUAL}, optional={"personal": RESIDUAL}),
    }
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


def _residuals(c: dict[str, Any]) -> Problems:
    history = c["bundle"]["kind"] == "history"
    for i, run in enumerate(c["runs"]):
        res = run["residuals"]
        if history and "personal" not in res:
            yield f"runs[{i}].residuals.personal", "is missing (a history bundle's profile)"
        for which, r in res.items():
            at = f"runs[{i}].residuals.{which}"
            if abs(r["sum"]) > MAX_RESIDUAL_BPM * r["n"]:
                yield f"{at}.sum", f"is {r['sum']:.6g}: more than {MAX_RESIDUAL_BPM:g} BPM per step"
            if "score_sq" in r and r["score_sq"] > MAX_SCORE**2 * r["n"]:
                yield f"{at}.score_sq", f"is {r['score_sq']:.6g}: implausible for {r['n']} steps"
            if history and which == "personal" and "score_sq" not in r:
                yield f"{at}.score_sq", "is missing (a history bundle's profile)"


PROFILE_RULES: tuple[Callable[[dict[str, Any]], Problems], ...] = (
    _counts,
    _start_order,
    _summaries,
    _residuals,
)


def check_profile(content: Any, name: str) -> None:
    """ProfileError (one line naming `name` and the field) unless `content` is a valid
    profile of this format: every field by PROFILE_SCHEMA, then PROFILE_RULES."""
    try:
        PROFILE_SCHEMA.check(content, "")
    except _Invalid as bad:
        raise ProfileError(f"{name}: {bad.path} {bad.problem}: {REBUILD}") from None
    for rule in PROFILE_RULES:
        for path, problem in rule(content):
            raise ProfileError(f"{name}: {path} {problem}: {REBUILD}")


# --------------------------------------------------------------------------- reading

_DEPTH_STEP = np.zeros(256, dtype=np.int8)  # +1 for [ and {, -1 for ] and }
_DEPTH_STEP[[ord("["), ord("{")]] = 1
_DEPTH_STEP[[ord("]"), ord("}")]] = -1
DEPTH_CHUNK = 1 << 20  # bytes counted at a time
_QUOTE, _BACKSLASH = ord('"'), ord("\\")


def _escaped(b: np.ndarray, at: np.ndarray, carry: int) -> np.ndarray:
    """Whether the bytes at positions `at` of chunk `b` follow an odd run of backslashes
    (`carry`: the run that ended the previous chunk)."""
    out = np.zeros(at.size, dtype=bool)
    after = at[(at > 0) & (b[np.maximum(at - 1, 0)] == _BACKSLASH)]
    if at.size and at[0] == 0:
        out[0] = carry % 2 == 1
    if after.size:  # rare outside hostile files: the run's start by a scan of the chunk
        idx = np.arange(b.size, dtype=np.int64)
        last_other = np.maximum.accumulate(np.where(b == _BACKSLASH, -1, idx))[after - 1]
        run = np.where(last_other >= 0, after - 1 - last_other, after + carry)
        out[np.searchsorted(at, after)] = run % 2 == 1
    return out


def nesting_depth(data: bytes, stop: int | None = None) -> int:
    """Deepest nesting of [ and { outside JSON strings (a quote after an odd run of
    backslashes is escaped), counted in chunks: memory bounded whatever the input; once
    past `stop` the count ends there."""
    depth = deepest = 0
    quotes = 0  # real quotes so far: odd = inside a string
    backslashes = 0  # the run of backslashes that ended the previous chunk
    for start in range(0, len(data), DEPTH_CHUNK):
        b = np.frombuffer(data, np.uint8, min(DEPTH_CHUNK, len(data) - start), start)
        q = np.flatnonzero(b == _QUOTE)
        real = q[~_escaped(b, q, backslashes)]
        steps = _DEPTH_STEP[b]
        at = np.flatnonzero(steps)
        outside = (quotes + np.searchsorted(real, at)) % 2 == 0
        running = depth + np.cumsum(steps[at[outside]], dtype=np.int64)
        if running.size:
            deepest = max(deepest, int(running.max()))
            depth = int(running[-1])
        if stop is not None and deepest > stop:
            break
        quotes += real.size
        other = b[::-1] != _BACKSLASH  # the chunk's trailing run of backslashes
        backslashes = int(np.argmax(other)) if other.any() else backslashes + b.size
    return deepest


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
