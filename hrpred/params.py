"""The one way from params.yaml to typed configuration.

Every stage has a frozen dataclass for its section (`SimConfig`, `CleanConfig`, ...). Its
fields carry types, not defaults: params.yaml is the one home of every value, so nothing can
drift between the file, the code, the tests and the benchmarks. `load_config(Cls, "section")`
reads the section, checks every value against the field's annotation and builds the dataclass;
a missing key, an unknown key or a wrong type is a one-line `ParamError` naming the key and the
file.

Numbers are read leniently where YAML is strict: `dvc exp run -S train.lr=1e-5` writes `1e-05`,
which PyYAML reads as a string; it is accepted wherever a float is expected.

Supported annotations: bool, int, float, str, `X | None`, `Literal[...]`, `tuple[X, ...]`,
`tuple[X, Y]`, `list[X]`, `dict[str, X]` and nested config dataclasses.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from hrpred.errors import HrpredError

PARAMS_FILE = Path("params.yaml")
T = TypeVar("T")
_NONE_WORDS = ("", "null", "none", "None")


class ParamError(HrpredError, ValueError):
    """A params.yaml key is missing, unknown or has the wrong type or value."""


def read_params(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    """The whole params file as a mapping (one-line error when absent or not YAML)."""
    path = Path(path)
    if not path.is_file():
        raise ParamError(f"{path} not found: run from the repository root")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ParamError(f"{path} is not valid YAML{line}: fix the file") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParamError(f"{path} must be a mapping of sections")
    return data


def lookup(data: Mapping[str, Any], key: str, file: str | Path = PARAMS_FILE) -> Any:
    """The value at a dotted key (`clean.truth`), or a ParamError naming it."""
    value: Any = data
    for i, part in enumerate(key.split(".")):
        if not isinstance(value, Mapping) or part not in value:
            missing = ".".join(key.split(".")[: i + 1])
            raise ParamError(f"{file}: missing key '{missing}'")
        value = value[part]
    return value


def load_config(
    cls: type[T],
    section: str,
    path: str | Path = PARAMS_FILE,
    data: Mapping[str, Any] | None = None,
) -> T:
    """Config dataclass `cls` from the (dotted) `section` of params.yaml.

    `data` is the already-read file, to read several sections with one parse.
    """
    data = read_params(path) if data is None else data
    return from_mapping(cls, lookup(data, section, path), section, path)


def load_value(key: str, kind: Any, path: str | Path = PARAMS_FILE) -> Any:
    """One typed value at a dotted key (`load_value("data.raw", str)`)."""
    return convert(kind, lookup(read_params(path), key, path), key, path)


def from_mapping(cls: type[T], mapping: Any, name: str, file: str | Path = PARAMS_FILE) -> T:
    """Build dataclass `cls` from `mapping`: every field required, no unknown key."""
    if not isinstance(mapping, Mapping):
        raise ParamError(f"{file}: '{name}' must be a mapping, got {mapping!r}")
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    known = {f.name for f in fields}
    unknown = sorted(str(k) for k in mapping if k not in known)
    if unknown:
        raise ParamError(
            f"{file}: unknown key '{name}.{unknown[0]}' (known: {', '.join(sorted(known))})"
        )
    kwargs: dict[str, Any] = {}
    for f in fields:
        key = f"{name}.{f.name}"
        if f.name not in mapping:
            raise ParamError(f"{file}: missing key '{key}': add it to {file}")
        kwargs[f.name] = convert(hints[f.name], mapping[f.name], key, file)
    try:
        return cls(**kwargs)
    except ParamError:
        raise
    except (TypeError, ValueError) as exc:
        raise ParamError(f"{file}: {name}: {exc}") from None


def _number(value: Any, key: str, file: str | Path, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ParamError(f"{file}: {key} must be {what}, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise ParamError(f"{file}: {key} must be {what}, got {value!r}") from None


def convert(kind: Any, value: Any, key: str, file: str | Path = PARAMS_FILE) -> Any:
    """`value` checked and converted to the annotation `kind` (see the module doc)."""
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if kind is Any:
        return value
    if dataclasses.is_dataclass(kind):
        return from_mapping(kind, value, key, file)  # type: ignore[arg-type]
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) != len(args) and (value is None or value in _NONE_WORDS):
            return None
        if len(inner) == 1:
            return convert(inner[0], value, key, file)
        raise TypeError(f"unsupported annotation {kind!r} for {key}")
    if origin is typing.Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ParamError(f"{file}: {key} must be one of {choices}, got {value!r}")
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ParamError(f"{file}: {key} must be true or false, got {value!r}")
    if kind is int:
        number = _number(value, key, file, "an integer")
        if not number.is_integer():
            raise ParamError(f"{file}: {key} must be an integer, got {value!r}")
        return int(number)
    if kind is float:
        return _number(value, key, file, "a number")
    if kind is str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ParamError(f"{file}: {key} must be a string, got {value!r}")
        return str(value)
    if origin in (tuple, list):
        if value is None:
            value = []
        if not isinstance(value, (list, tuple)):
            raise ParamError(f"{file}: {key} must be a list, got {value!r}")
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise ParamError(f"{file}: {key} must have {len(args)} items, got {value!r}")
            items = [
                convert(a, v, f"{key}[{i}]", file)
                for i, (a, v) in enumerate(zip(args, value, strict=True))
            ]
        else:
            item = args[0] if args else Any
            items = [convert(item, v, f"{key}[{i}]", file) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise ParamError(f"{file}: {key} must be a mapping, got {value!r}")
        kt, vt = args if args else (Any, Any)
        return {
            convert(kt, k, f"{key}", file): convert(vt, v, f"{key}.{k}", file)
            for k, v in value.items()
        }
    raise TypeError(f"unsupported annotation {kind!r} for {key}")
