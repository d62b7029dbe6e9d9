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

# unscaled features [n, T, F] -> HR [n, T] (the trained LSTM, or any stand-in)
Predictor = Callable[[np.ndarray], np.ndarray]
# (rows, their unscaled features [n, T, F]) -> (personalised HR [n, T], spread [n, T], BPM)
PersonalPredictor = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


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
    """A learned personalised predictor and what it is (metrics: test.learned_personal_model)."""

    name: str
    predict: PersonalPredictor
    # unscaled features [n, T, F] -> (cold HR [n, T], its spread [n, T]): no context
    cold: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class PersonalResult:
    """Per test row: history size, offsets and sums of every predictor, cold and personal.

    Names: "model" and each baseline, plus "offset" (the model's cold prediction + the offset
    personaliser; the same as "model" when no learned history-conditioned model is given).
    `learned`: what personalised "model" (`LearnedPersonal.name`, or `personal.OFFSET_ONLY`).
    """

    sizes: np.ndarray
    offsets: dict[str, np.ndarray]
    cold: dict[str, RowSums]
    personal: dict[str, RowSums]
    model: np.ndarray  # personalised model predictions [n_test, T] (example traces)
    learned: str
    residual: np.ndarray | None = None  # the learned model's residual correction [n_test] (BPM)
    spread: np.ndarray | None = None  # the learned model's spread [n_test, T] (BPM)
    scores: pd.Series | None = None  # the band's per-workout scores (test rows + their history)
    history: pd.DataFrame | None = None  # the history lines of the test rows
    band: tuple[np.ndarray, np.ndarray] | None = None  # calibrated (lower, upper) [n_test, T]
