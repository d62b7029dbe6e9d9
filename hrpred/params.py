"""Typed access to params.yaml.

PyYAML reads `1e-05` (what `dvc exp run -S x=1e-5` writes) as a string, so every
value is read through a typed getter that coerces and fails with a one-line
message naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class ParamError(ValueError):
    """A params.yaml key is missing or has the wrong type."""


class Params:
    """One section of params.yaml with typed getters: `p.float("lr")`."""

    def __init__(self, data: dict[str, Any], prefix: str) -> None:
        self._data = data
        self._prefix = prefix

    def _name(self, key: str) -> str:
        return f"{self._prefix}.{key}" if self._prefix else key

    def _raw(self, key: str, default: Any) -> Any:
        if key in self._data:
            return self._data[key]
        if default is not _MISSING:
            return default
        raise ParamError(f"params.yaml: missing key '{self._name(key)}'")

    def raw(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def float(self, key: str, default: Any = None) -> float:
        value = self._raw(key, _MISSING if default is None else default)
        if isinstance(value, bool):
            raise ParamError(f"params.yaml: {self._name(key)} must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ParamError(
                f"params.yaml: {self._name(key)} must be a number, got {value!r}"
            ) from None

    def int(self, key: str, default: Any = None) -> int:
        value = self._raw(key, _MISSING if default is None else default)
        if isinstance(value, bool):
            raise ParamError(f"params.yaml: {self._name(key)} must be an integer, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ParamError(
                f"params.yaml: {self._name(key)} must be an integer, got {value!r}"
            ) from None
        if not number.is_integer():
            raise ParamError(f"params.yaml: {self._name(key)} must be an integer, got {value!r}")
        return int(number)

    def bool(self, key: str, default: Any = None) -> bool:
        value = self._raw(key, _MISSING if default is None else default)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ParamError(f"params.yaml: {self._name(key)} must be true or false, got {value!r}")

    def str(self, key: str, default: Any = None) -> str:
        value = self._raw(key, _MISSING if default is None else default)
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ParamError(f"params.yaml: {self._name(key)} must be a string, got {value!r}")
        return str(value)

    def optional_str(self, key: str) -> str | None:
        value = self._data.get(key)
        if value in (None, "", "null", "none", "None"):
            return None
        return self.str(key)

    def list(self, key: str, default: Any = None) -> list[Any]:
        value = self._raw(key, _MISSING if default is None else default)
        if not isinstance(value, list):
            raise ParamError(f"params.yaml: {self._name(key)} must be a list, got {value!r}")
        return value

    def floats(self, key: str, default: Any = None) -> list[float]:
        items = self.list(key, default)
        try:
            return [float(v) for v in items]
        except (TypeError, ValueError):
            raise ParamError(
                f"params.yaml: {self._name(key)} must be a list of numbers, got {items!r}"
            ) from None

    def section(self, key: str) -> Params:
        value = self._raw(key, {})
        if not isinstance(value, dict):
            raise ParamError(f"params.yaml: {self._name(key)} must be a mapping, got {value!r}")
        return Params(value, self._name(key))

    def as_dict(self) -> dict[str, Any]:
        return dict(self._data)


_MISSING = object()


def load_params(section: str | None = None, path: str | Path = "params.yaml") -> Params:
    """Load params.yaml (or one top-level section of it) with typed getters."""
    path = Path(path)
    if not path.exists():
        raise ParamError(f"{path} not found: run from the repository root")
    with path.open() as f:
        data = yaml.safe_load(f) or {}
    root = Params(data, "")
    return root.section(section) if section else root
