"""The `split` section of params.yaml as a typed config (values live only in params.yaml)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from hrpred.errors import HrpredError
from hrpred.params import ParamError


class SplitError(HrpredError, ValueError):
    """The params cannot split these workouts (message says which value to change)."""


def check_fractions(fractions: Sequence[float]) -> list[float]:
    """Three non-negative fractions summing to 1 (within 1e-6), train > 0."""
    fr = [float(f) for f in fractions]
    if len(fr) != 3 or any(f < 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-6 or fr[0] <= 0:
        raise SplitError(f"fractions must be 3 non-negative numbers summing to 1, got {fractions}")
    return fr


@dataclass(frozen=True)
class SplitConfig:
    """Train/val/test assignment and the train-only scaler (data/split/)."""

    method: Literal["user", "chronological"]  # disjoint users | each user's workouts by time
    seed: int  # salt of the user-id hash
    fractions: tuple[float, ...]  # train / val / test share of users (user method)
    stratify: bool  # user method: deal users by workouts-per-user bucket
    chrono_fractions: tuple[float, ...]  # train / val / test share of a user's workouts
    min_workouts: int  # chronological: users with fewer workouts are dropped
    chrono_drop_first: bool  # chronological: also drop each user's first workout (FitRec)
    scaler_block_rows: int  # rows per read when fitting the scaler (memory only)
    max_history: int  # earlier workouts kept per workout in data/split/history.parquet

    def __post_init__(self) -> None:
        if self.method not in ("user", "chronological"):
            raise ParamError(
                f"params.yaml: split.method must be one of 'user', 'chronological', "
                f"got {self.method!r}"
            )
        for key in ("fractions", "chrono_fractions"):
            try:
                check_fractions(getattr(self, key))
            except ValueError as exc:
                raise ParamError(f"params.yaml: split.{key}: {exc}") from None
        if self.min_workouts < 1:
            raise ParamError(
                f"params.yaml: split.min_workouts must be >= 1, got {self.min_workouts}"
            )
        if self.scaler_block_rows < 1:
            raise ParamError("params.yaml: split.scaler_block_rows must be >= 1")
        if self.max_history < 0:
            raise ParamError(f"params.yaml: split.max_history must be >= 0, got {self.max_history}")
