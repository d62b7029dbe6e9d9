"""The `featurize` section of params.yaml as a typed config (values live only in params.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hrpred.features.registry import expand_names
from hrpred.params import ParamError


@dataclass(frozen=True)
class FeaturizeConfig:
    """Features and fixed-length sequences (data/features/)."""

    seq_len: int  # steps per sequence (samples)
    long_workouts: Literal["truncate", "windows"]  # how a workout longer than seq_len is cut
    batch_size: int  # workouts per parquet batch (memory only, same output)
    features: tuple[str, ...]  # ordered registry names (the leaky group expands to 3 columns)

    def __post_init__(self) -> None:
        if self.seq_len < 1 or self.batch_size < 1:
            raise ParamError("params.yaml: featurize.seq_len and featurize.batch_size must be >= 1")
        if self.long_workouts not in ("truncate", "windows"):
            raise ParamError(
                "params.yaml: featurize.long_workouts must be one of 'truncate', 'windows', "
                f"got {self.long_workouts!r}"
            )
        try:
            expand_names(self.features)
        except ValueError as exc:
            raise ParamError(f"params.yaml: featurize.features: {exc}") from None

    @property
    def names(self) -> list[str]:
        """The feature columns, in order (the leaky group expanded)."""
        return expand_names(self.features)
