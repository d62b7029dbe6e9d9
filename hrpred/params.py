"""The one way from the params files to typed configuration.

Every stage has a frozen dataclass for its section (`SimConfig`, `CleanConfig`, ...). Its
fields carry types, not defaults: the params files are the one home of every value, so nothing
can drift between the files, the code, the tests and the benchmarks. `load_config(Cls,
"section")` reads the section, checks every value against the field's annotation and builds
the dataclass; a missing key, an unknown key or a wrong type is a one-line `ParamError` naming
the key and its file.

Where the values live:
- params.yaml: the knobs people turn in experiments, one section per stage;
- params/<section>.yaml: the calibrated part of <section> (the simulator's world, the
  cleaning rules' and detector's thresholds, the report's category rules). Its keys sit
  directly under the section: `detector.lock_min_bpm` in params/clean.yaml is the config key
  `clean.detector.lock_min_bpm` (`dvc exp run -S params/clean.yaml:detector.lock_min_bpm=150`).
  `read_params` merges these files into params.yaml's tree; a key lives in exactly one file.
- `SHARED_KEYS`: a value two configs need (the grade costs: the simulator's physiology and the
  detector's expected HR) has one home, and the loader fills the other config's field from it.

Numbers are read leniently where YAML is strict: `dvc exp run -S train.lr=1e-5` writes `1e-05`,
which PyYAML reads as a string; it is accepted wherever a float is expected.

Supported annotations: bool, int, float, str, `X | None`, `Literal[...]`, `tuple[X, ...]`,
`tuple[X, Y]`, `list[X]`, `dict[str, X]` and nested config dataclasses.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from hrpred.errors import HrpredError

# libyaml's safe loader when PyYAML has it (the wheels do): the same tags and resolver as
# yaml.SafeLoader (`1e-05` is still a string), ~10x faster on the params files
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
PARAMS_FILE = Path("params.yaml")
PARAMS_DIR = "params"  # beside params.yaml: params/<section>.yaml, the calibrated part of <section>
# One value, two configs: the config key (left) is filled from the key that holds it (right).
SHARED_KEYS: dict[str, str] = {
    "clean.detector.grade_cost_up": "simulate.grade_cost_up",
    "clean.detector.grade_cost_down": "simulate.grade_cost_down",
}
T = TypeVar("T")
_NONE_WORDS = ("", "null", "none", "None")


class ParamError(HrpredError, ValueError):
    """A params key is missing, unknown or has the wrong type or value."""


@dataclasses.dataclass(frozen=True)
class Sources:
    """Which file holds each key of a merged params tree (for error messages)."""

    main: Path  # params.yaml
    tree: Mapping[str, Any]  # params.yaml as read
    parts: Mapping[str, tuple[Path, Mapping[str, Any]]]  # section -> (params/<section>.yaml, tree)

    def _holders(self, path: list[str]) -> list[str]:
        found = [str(self.main)] if has_key(self.tree, path) else []
        if path and path[0] in self.parts:
            file, tree = self.parts[path[0]]
            if has_key(tree, path[1:]):
                found.append(str(file))
        return found

    def file_of(self, key: str) -> str:
        """The file holding `key`; for a missing key, the file(s) holding its parent."""
        key = SHARED_KEYS.get(key, key)
        path = [p for p in re.sub(r"\[\d+\]", "", key).split(".") if p]
        for depth in range(len(path), 0, -1):
            found = self._holders(path[:depth])
            if found:
                return (" and " if depth == len(path) else " or ").join(found)
        return str(self.main)


Where = str | Path | Sources  # what error messages name: one file, or the merged tree's sources


class Params(dict):
    """params.yaml with params/<section>.yaml merged in (`read_params`), and their `sources`."""

    def __init__(self, tree: Mapping[str, Any], sources: Sources) -> None:
        super().__init__(tree)
        self.sources = sources


def has_key(tree: Any, path: list[str]) -> bool:
    for part in path:
        if not isinstance(tree, Mapping) or part not in tree:
            return False
        tree = tree[part]
    return True


def _at(where: Where, key: str) -> str:
    return where.file_of(key) if isinstance(where, Sources) else str(where)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """One params file as a mapping (one-line error when absent or not YAML)."""
    path = Path(path)
    if not path.is_file():
        raise ParamError(f"{path} not found: run from the repository root")
    try:
        data = yaml.load(path.read_text(), Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ParamError(f"{path} is not valid YAML{line}: fix the file") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParamError(f"{path} must be a mapping of sections")
    return data


def _merge(
    into: dict[str, Any], extra: Mapping[str, Any], key: str, main: Path, part: Path
) -> None:
    for k, v in extra.items():
        if k not in into:
            into[k] = copy.deepcopy(v)
        elif isinstance(into[k], dict) and isinstance(v, Mapping):
            _merge(into[k], v, f"{key}.{k}", main, part)
        else:
            raise ParamError(f"{part}: {key}.{k} is also set in {main}: keep it in one file")


def read_params(path: str | Path = PARAMS_FILE) -> Params:
    """params.yaml merged with every params/<section>.yaml beside it (each under <section>)."""
    path = Path(path)
    main = read_yaml(path)
    tree = copy.deepcopy(main)
    parts: dict[str, tuple[Path, Mapping[str, Any]]] = {}
    folder = path.parent / PARAMS_DIR
    for part in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        section, data = part.stem, read_yaml(part)
        if not isinstance(tree.setdefault(section, {}), dict):
            raise ParamError(f"{path}: '{section}' must be a mapping ({part} adds keys to it)")
        _merge(tree[section], data, section, path, part)
        parts[section] = (part, data)
    return Params(tree, Sources(path, main, parts))


def lookup(data: Mapping[str, Any], key: str, file: Where = PARAMS_FILE) -> Any:
    """The value at a dotted key (`clean.truth`), or a ParamError naming it."""
    value: Any = data
    for i, part in enumerate(key.split(".")):
        if not isinstance(value, Mapping) or part not in value:
            missing = ".".join(key.split(".")[: i + 1])
            home = _at(file, missing)
            raise ParamError(f"{home}: missing key '{missing}': add it to {home}")
        value = value[part]
    return value


def _with_shared(data: Mapping[str, Any], section: str, mapping: Any, where: Where) -> Any:
    """The section's mapping with the SHARED_KEYS below it filled from their homes."""
    shared = {k: v for k, v in SHARED_KEYS.items() if k.startswith(f"{section}.")}
    if not shared or not isinstance(mapping, Mapping):
        return mapping
    mapping = copy.deepcopy(dict(mapping))
    for key, home in shared.items():
        *parents, last = key[len(section) + 1 :].split(".")
        node: Any = mapping
        for part in parents:
            node = node.get(part) if isinstance(node, Mapping) else None
        if not isinstance(node, dict):
            continue  # the parent is missing or no mapping: from_mapping says so
        if last in node:
            raise ParamError(
                f"{_at(where, key)}: {key} is {home} ({_at(where, home)}): set it there only"
            )
        node[last] = lookup(data, home, where)
    return mapping


def load_config(
    cls: type[T],
    section: str,
    path: str | Path = PARAMS_FILE,
    data: Mapping[str, Any] | None = None,
) -> T:
    """Config dataclass `cls` from the (dotted) `section` of the params files at `path`.

    `data` is the already-read params (`read_params`), to read several sections with one parse.
    """
    data = read_params(path) if data is None else data
    where = data.sources if isinstance(data, Params) else path
    mapping = _with_shared(data, section, lookup(data, section, where), where)
    return from_mapping(cls, mapping, section, where)


def load_value(key: str, kind: Any, path: str | Path = PARAMS_FILE) -> Any:
    """One typed value at a dotted key (`load_value("data.raw", str)`)."""
    data = read_params(path)
    home = SHARED_KEYS.get(key, key)
    return convert(kind, lookup(data, home, data.sources), key, data.sources)


def _relocated(exc: ParamError, cls: type, name: str, where: Where) -> ParamError:
    """A config's own check names params.yaml; name the file(s) holding the keys it cites."""
    text, prefix = str(exc), f"{PARAMS_FILE}: "
    if not isinstance(where, Sources) or not text.startswith(prefix):
        return exc
    body = text[len(prefix) :]
    cited = [f.name for f in dataclasses.fields(cls) if re.search(rf"\b{f.name}\b", body)]
    files = dict.fromkeys(where.file_of(f"{name}.{f}") for f in cited or [""])
    return ParamError(f"{' and '.join(files)}: {body}")


def from_mapping(cls: type[T], mapping: Any, name: str, file: Where = PARAMS_FILE) -> T:
    """Build dataclass `cls` from `mapping`: every field required, no unknown key."""
    if not isinstance(mapping, Mapping):
        raise ParamError(f"{_at(file, name)}: '{name}' must be a mapping, got {mapping!r}")
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    known = {f.name for f in fields}
    unknown = sorted(str(k) for k in mapping if k not in known)
    if unknown:
        key = f"{name}.{unknown[0]}"
        raise ParamError(
            f"{_at(file, key)}: unknown key '{key}' (known: {', '.join(sorted(known))})"
        )
    kwargs: dict[str, Any] = {}
    for f in fields:
        key = f"{name}.{f.name}"
        if f.name not in mapping:
            home = _at(file, key)
            raise ParamError(f"{home}: missing key '{key}': add it to {home}")
        kwargs[f.name] = convert(hints[f.name], mapping[f.name], key, file)
    try:
        return cls(**kwargs)
    except ParamError as exc:
        raise _relocated(exc, cls, name, file) from None
    except (TypeError, ValueError) as exc:
        raise ParamError(f"{_at(file, name)}: {name}: {exc}") from None


def _number(value: Any, key: str, file: Where, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ParamError(f"{_at(file, key)}: {key} must be {what}, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise ParamError(f"{_at(file, key)}: {key} must be {what}, got {value!r}") from None


def convert(kind: Any, value: Any, key: str, file: Where = PARAMS_FILE) -> Any:
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
            raise ParamError(f"{_at(file, key)}: {key} must be one of {choices}, got {value!r}")
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ParamError(f"{_at(file, key)}: {key} must be true or false, got {value!r}")
    if kind is int:
        number = _number(value, key, file, "an integer")
        if not number.is_integer():
            raise ParamError(f"{_at(file, key)}: {key} must be an integer, got {value!r}")
        return int(number)
    if kind is float:
        return _number(value, key, file, "a number")
    if kind is str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ParamError(f"{_at(file, key)}: {key} must be a string, got {value!r}")
        return str(value)
    if origin in (tuple, list):
        if value is None:
            value = []
        if not isinstance(value, (list, tuple)):
            raise ParamError(f"{_at(file, key)}: {key} must be a list, got {value!r}")
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise ParamError(
                    f"{_at(file, key)}: {key} must have {len(args)} items, got {value!r}"
                )
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
            raise ParamError(f"{_at(file, key)}: {key} must be a mapping, got {value!r}")
        kt, vt = args if args else (Any, Any)
        return {
            convert(kt, k, f"{key}", file): convert(vt, v, f"{key}.{k}", file)
            for k, v in value.items()
        }
    raise TypeError(f"unsupported annotation {kind!r} for {key}")
