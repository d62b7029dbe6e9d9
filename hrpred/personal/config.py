"""params.yaml `personal.offset` as a typed config (values live only in params.yaml)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from hrpred.params import ParamError


@dataclass(frozen=True)
class OffsetConfig:
    """The offset personaliser (`hrpred.personal.offset`)."""

    k: int  # most recent history workouts used
    shrink: float  # prior weight (in workouts) pulling the offset towards 0 (the population)
    half_life_days: float  # a history workout this many days old weighs 1/2 (recency)

    def __post_init__(self) -> None:
        if self.k < 0 or self.shrink < 0 or not self.half_life_days > 0:
            raise ParamError(
                "params.yaml: personal.offset needs k >= 0, shrink >= 0 and half_life_days > 0"
                f" (got k={self.k}, shrink={self.shrink}, half_life_days={self.half_life_days})"
            )


@dataclass(frozen=True)
class LearnedConfig:
    """`personal.learned`: the history-conditioned network trained by the train stage
    (`hrpred.model.HistoryHRModel`); `model: none` trains the population LSTM unchanged."""

    model: Literal["none", "encoder"]  # none = population LSTM (history ignored)
    design: Literal["condition", "physio"]  # how the history encoder conditions the LSTM
    k_max: int  # most recent history workouts read; training draws 0..k_max per sample
    enc_hidden: int  # encoder MLP width
    embed: int  # encoder output size

    def __post_init__(self) -> None:
        if self.k_max < 1 or self.enc_hidden < 1 or self.embed < 1:
            raise ParamError(
                "params.yaml: personal.learned needs k_max, enc_hidden and embed >= 1"
                f" (got {self.k_max}, {self.enc_hidden}, {self.embed})"
            )

    def result_dict(self) -> dict[str, object]:
        """What changes the trained weights (stored in model.pt, fingerprinted)."""
        return asdict(self)
