"""What the evaluate stage's steps hand each other: the predictor types and the results of
scoring a split (`scoring.evaluate_all`) and of personalising the test split
(`personal.personalise`). A leaf module: it imports no other step of the stage, so every step
can name these types without importing another step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hrpred.evaluate.metrics import NoiseFloorSums, RowSums
from hrpred.evaluate.plots import PlotSums
from hrpred.personal.engine import Plan

# unscaled features [n, T, F] -> HR [n, T] (the trained LSTM, or any stand-in)
Predictor = Callable[[np.ndarray], np.ndarray]


@dataclass
class SplitResult:
    """What the report and plots need of one evaluated split (no [N, T] arrays but `model`).

    `sums`: per-row error sums of "model" and each baseline; `model`: the model's predictions
    [len(rows), T] in the predictor's dtype (float32 for the LSTM), kept for the test split only
    (example traces); `bands`: report-only HR band of each row.
    """

    rows: np.ndarray
    sums: dict[str, RowSums]
    bands: list[str]
    resid_abs_sum: float  # offset diagnostics: sum |err - workout mean error| ...
    resid_n: int  # ... over this many valid steps
    plot: PlotSums | None = None
    noise: NoiseFloorSums | None = None
    model: np.ndarray | None = None


@dataclass(frozen=True)
class LearnedPersonal:
    """The history-conditioned network as evaluate uses it (metrics: test.learned_personal_model).

    `network(rows, x, history)`: (HR [n, T], spread [n, T]) of rows of data/features with
    unscaled features x [n, T, F], each row's context read from the given history lines;
    `cold(x)`: the same without context (the population prediction)."""

    name: str
    network: Callable[[np.ndarray, np.ndarray, pd.DataFrame], tuple[np.ndarray, np.ndarray]]
    cold: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class PersonalResult:
    """The personalised val and test rows (`rows`, sorted; `split` of each) and their plans.

    Curves [n, T] float32: `curves[name]` for cold (the population prediction), offset,
    learned, headline (the model's personal prediction) and `spread` (the network's spread
    with the plan's context, before the runner scale). Per row: `sizes` (earlier workouts in
    the history table), `plans` (the workout's Plan), `baseline_cold`/`baseline_personal`
    error sums of each baseline. `ref`: the validation workouts' mean band score.
    """

    rows: np.ndarray
    split: np.ndarray
    sizes: np.ndarray
    plans: list[Plan]
    curves: dict[str, np.ndarray]
    spread: np.ndarray
    baseline_cold: dict[str, RowSums]
    baseline_personal: dict[str, RowSums]
    learned: str  # what the learned predictor is (metrics: test.learned_personal_model)
    has_learned: bool  # a history network (else learned = offset, weight 0; no band)
    ref: float | None  # the band's runner-scale reference score

    def take(self, split: str) -> np.ndarray:
        """Positions of one split's rows."""
        return np.flatnonzero(self.split == split)

    def factors(self) -> np.ndarray:
        return np.array([p.factor for p in self.plans], dtype=np.float64)

    def used(self) -> np.ndarray:
        return np.array([p.used for p in self.plans], dtype=np.int64)
