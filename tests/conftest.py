"""Shared fixtures: the real configuration (params.yaml), changed one field at a time.

Tests build a stage's config the way the stage does, from the committed params.yaml, then
change only what they test (`dataclasses.replace(cfg, lr=...)`), so no default lives in the
tests either (the flax examples' pattern).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from hrpred.params import load_config, read_params

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"
T = TypeVar("T")


@pytest.fixture(scope="session")
def params() -> dict[str, Any]:
    """The committed params.yaml, parsed once."""
    return read_params(PARAMS)


@pytest.fixture(scope="session")
def config(params: dict[str, Any]) -> Callable[..., Any]:
    """`config(CleanConfig, "clean")`: a section of the real params.yaml as its dataclass."""

    def build(cls: type[T], section: str) -> T:
        return load_config(cls, section, PARAMS, data=params)

    return build
