"""params.yaml `personal` as typed configs (values live only in the params files).

One rule type (`RuleConfig`: the shrunk, recency-weighted mean of `hrpred.personal.rules`)
serves the three places that average something over a runner's earlier runs: the offset
(their residuals vs the population prediction), the learned model's residual correction (their
residuals vs the network's personalised prediction) and the band's runner scale (their band
scores). `ChangeConfig` is the level-change detector (`hrpred.personal.change`),
`HeadlineConfig` the forecaster that weighs population, offset and learned into the headline
(`hrpred.personal.engine`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from hrpred.params import ParamError


@dataclass(frozen=True)
class RuleConfig:
    """The shrunk, recency-weighted mean over a runner's `k` most recent usable earlier runs
    (`hrpred.personal.rules.shrunk_mean`)."""

    k: int  # most recent earlier runs read (0 = off: the rule gives 0)
    shrink: float  # prior weight (in runs) pulling the mean towards 0: n_eff / (n_eff + shrink)
    half_life_days: float  # an earlier run this many days old weighs 1/2 (recency)

    def __post_init__(self) -> None:
        if self.k < 0 or self.shrink < 0 or not self.half_life_days > 0:
            raise ParamError(
                "params.yaml: a personal rule needs k >= 0, shrink >= 0 and half_life_days > 0"
                f" (got k={self.k}, shrink={self.shrink}, half_life_days={self.half_life_days})"
            )


@dataclass(frozen=True)
class ChangeConfig:
    """The level-change detector (`hrpred.personal.change`) over a runner's earlier runs'
    mean residuals vs the population prediction."""

    max_runs: int  # runs compared on each side of a candidate change (0 = no detection)
    min_score: float  # the two-segment test statistic (a squared z) must exceed this ...
    min_jump_bpm: float  # ... and the levels differ by at least this (BPM)
    noise_bpm: float  # prior sd of one run's mean residual around the runner's level (BPM)
    noise_prior_runs: float  # weight of that prior against the runner's own run-to-run scatter
    break_days: float  # a run this many days after the runner's latest earlier run ...
    break_widen: float  # ... gets its band's runner scale times this (>= 1: the level may move)

    def __post_init__(self) -> None:
        if self.max_runs < 0 or self.min_score < 0 or self.min_jump_bpm < 0:
            raise ParamError(
                "params.yaml: personal.change needs max_runs, min_score, min_jump >= 0"
            )
        if not self.noise_bpm > 0 or self.noise_prior_runs < 0:
            raise ParamError("params.yaml: personal.change needs noise_bpm > 0, prior runs >= 0")
        if not self.break_days > 0 or not self.break_widen >= 1:
            raise ParamError(
                "params.yaml: personal.change needs break_days > 0 and break_widen >= 1"
                f" (got {self.break_days}, {self.break_widen})"
            )


@dataclass(frozen=True)
class HeadlineConfig:
    """The exponentially weighted forecaster behind the headline prediction: each predictor
    (population, offset, learned) weighs exp(-eta * its discounted MAE over earlier runs)."""

    eta: float  # learning rate (per BPM of discounted MAE; 0 = equal weights)
    decay: float  # discount per run back in time (1 = every earlier run counts the same)

    def __post_init__(self) -> None:
        if self.eta < 0 or not 0 < self.decay <= 1:
            raise ParamError("params.yaml: personal.headline needs eta >= 0 and 0 < decay <= 1")


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


@dataclass(frozen=True)
class PersonalConfig:
    """params.yaml `personal`: how a runner's earlier runs personalise a prediction. Evaluate
    scores with it, export writes it into the bundle, and serving reads it from there."""

    offset: RuleConfig  # population + the rule over the earlier runs' cold residuals
    residual: RuleConfig  # learned network + the rule over its own residuals on them
    runner_scale: RuleConfig  # the band's spread x (1 + rule(score - ref) / ref)
    change: ChangeConfig  # which earlier runs still describe the runner
    headline: HeadlineConfig  # how population, offset and learned make the headline
    learned: LearnedConfig  # the history-conditioned network (train stage)

    def to_json(self) -> dict[str, object]:
        return asdict(self)
