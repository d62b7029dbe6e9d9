"""Shared fixtures: the real configuration, changed one field at a time.

Tests build a stage's config the way the stage does, from the committed params files
(params.yaml with params/<section>.yaml merged in, `hrpred.params.read_params`), then
change only what they test (`dataclasses.replace(cfg, lr=...)`), so no default lives in the
tests either (the flax examples' pattern).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pytest

from hrpred.params import load_config, read_params

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"
T = TypeVar("T")


@pytest.fixture(scope="session")
def params() -> dict[str, Any]:
    """The committed params files, merged (hrpred.params.read_params) and parsed once."""
    return read_params(PARAMS)


@pytest.fixture(scope="session")
def config(params: dict[str, Any]) -> Callable[..., Any]:
    """`config(CleanConfig, "clean")`: a section of the real params.yaml as its dataclass."""

    def build(cls: type[T], section: str) -> T:
        return load_config(cls, section, PARAMS, data=params)

    return build


@pytest.fixture
def make_tree(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """`make_tree(root=None, n=48, t=120, seed=0)`: a small data/features + data/split tree
    under `root` (default: tmp_path), written with hrpred.store's writers.

    Returns the arrays written (fake_eval_data.make_arrays' dict plus ids, split, scaler).
    """
    from fake_eval_data import write_data

    def make(root: Path | None = None, n: int = 48, t: int = 120, seed: int = 0) -> dict[str, Any]:
        root = tmp_path if root is None else Path(root)
        arrays = write_data(root, n=n, t=t, seed=seed)
        write_history_table(root)
        return arrays

    return make


def write_history_table(root: Path, max_history: int = 50) -> pd.DataFrame:
    """data/split/history.parquet of a tree (hrpred.split.history from user_id + start_time)."""
    from hrpred import store
    from hrpred.split.history import build_history

    assignment = pd.read_parquet(root / "data" / "split" / "assignment.parquet")
    index = pd.read_parquet(root / "data" / "features" / "index.parquet")
    history = build_history(assignment, index, max_history)
    store.write_history(root / "data" / "split", history)
    return history
