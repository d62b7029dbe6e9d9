"""Untrusted JSON (a profile the runner hands back): the nesting of its text counted before
it is parsed, and declarative specs that check every field of the parsed value.

`nesting_depth(data)` counts [ and { outside strings in chunks of bounded memory, so a file
nested 100,000 deep is refused before `json` recurses into it. A `Spec` checks one field:
`Number` (finite, within a range), `Integer`, `Text` (length, choices, pattern), `Flag`,
`Const`, `ListOf` (items, at most n), `MapOf` (free keys, one value spec), `Record` (exactly
its fields, some optional); `check(value, path)` raises `Invalid(path, problem)` for the first
fault, e.g. `runs[3].residuals.cold.sum` / `is not a finite number`. The walk follows the
spec, never the value, so its depth is the spec's. `hrpred.serve.profile_io` holds the
profile's spec.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_TEXT_CHARS = 1000  # a text field's default limit (a file name, a reason)
MAX_NAME_CHARS = 64  # a key's (a feature's name)


class Invalid(Exception):
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
    """A field's type and range; `check` raises Invalid(path, problem) on the first fault."""

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
            raise Invalid(path, f"is not a number ({_kind(value)})")
        if isinstance(value, float) and not math.isfinite(value):
            raise Invalid(path, "is not a finite number")
        if not self.lo <= value <= self.hi:
            raise Invalid(path, f"is {value:.6g}, outside the plausible {self.lo:g}..{self.hi:g}")


@dataclass(frozen=True)
class Integer(Spec):
    """An integer (not a float, not true/false) within lo..hi."""

    lo: int
    hi: int

    def check(self, value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(path, f"is not an integer ({_kind(value)})")
        if not self.lo <= value <= self.hi:
            raise Invalid(path, f"is {value}, outside {self.lo:,}..{self.hi:,}")


@dataclass(frozen=True)
class Text(Spec):
    """A string of at most `max_chars`, one of `choices` or matching `pattern` if given."""

    max_chars: int = MAX_TEXT_CHARS
    choices: tuple[str, ...] = ()
    pattern: str = ""

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, str):
            raise Invalid(path, f"is not a text ({_kind(value)})")
        if len(value) > self.max_chars:
            raise Invalid(path, f"is longer than {self.max_chars} characters")
        if self.choices and value not in self.choices:
            raise Invalid(path, f"is not one of {', '.join(self.choices)}")
        if self.pattern and not re.fullmatch(self.pattern, value):
            raise Invalid(path, "is not in the expected form")


@dataclass(frozen=True)
class Flag(Spec):
    """true or false."""

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, bool):
            raise Invalid(path, f"is not true/false ({_kind(value)})")


@dataclass(frozen=True)
class Const(Spec):
    """Exactly this value (same type)."""

    value: Any

    def check(self, value: Any, path: str) -> None:
        if type(value) is not type(self.value) or value != self.value:
            raise Invalid(path, f"is not {self.value!r}")


@dataclass(frozen=True)
class ListOf(Spec):
    """A list of at most `max_items` items, each `item`."""

    item: Spec
    max_items: int

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, list):
            raise Invalid(path, f"is not a list ({_kind(value)})")
        if len(value) > self.max_items:
            raise Invalid(path, f"has {len(value):,} items, more than {self.max_items:,}")
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
            raise Invalid(path, f"is not an object ({_kind(value)})")
        if len(value) > self.max_items:
            raise Invalid(path, f"has {len(value):,} entries, more than {self.max_items:,}")
        for key, item in value.items():
            if len(key) > self.key_chars:
                raise Invalid(path, f"has a key longer than {self.key_chars} characters")
            self.value.check(item, f"{path}.{key}")


@dataclass(frozen=True)
class Record(Spec):
    """An object with exactly these fields: every one of `fields`, any of `optional`, no
    other."""

    fields: Mapping[str, Spec]
    optional: Mapping[str, Spec] = field(default_factory=dict)

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise Invalid(path, f"is not an object ({_kind(value)})")
        at = f"{path}." if path else ""
        for key, spec in self.fields.items():
            if key not in value:
                raise Invalid(f"{at}{key}", "is missing")
            spec.check(value[key], f"{at}{key}")
        for key, item in value.items():
            if key in self.fields:
                continue
            if key not in self.optional:
                shown = key if len(key) <= MAX_NAME_CHARS else key[:MAX_NAME_CHARS] + "..."
                raise Invalid(f"{at}{shown}", "is not a field of this file")
            self.optional[key].check(item, f"{at}{key}")


# --------------------------------------------------------------------------- nesting

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
