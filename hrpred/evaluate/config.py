"""The `evaluate` section of params.yaml as a typed config (values live only in params.yaml)."""

from __future__ import annotations

from dataclasses import dataclass

from hrpred.evaluate.categories import CategoryRules
from hrpred.params import ParamError
from hrpred.uncertainty import BandConfig


@dataclass(frozen=True)
class EvalConfig:
    """params.yaml `evaluate:` (units and meaning in the file's comments)."""

    animations: bool
    seed: int
    batch_rows: int
    ridge_alpha: float
    physio_taus_s: tuple[float, ...]
    physio_climb_clip: float
    baseline_fit_rows: int
    categories: CategoryRules
    band: BandConfig
    hr_band_edges: tuple[float, ...]
    example_quantiles: tuple[float, ...]
    example_window: float
    example_min_steps: int
    n_scatter: int
    figure_dpi: int
    animation_frames: int
    animation_fps: int
    animation_dpi: int
    plot_workers: int
    predict_threads: int
    runner_resamples: int

    def __post_init__(self) -> None:
        if self.batch_rows < 1 or self.ridge_alpha < 0 or not self.physio_taus_s:
            raise ParamError("evaluate: batch_rows >= 1, ridge_alpha >= 0, physio_taus_s non-empty")
        if any(t <= 0 for t in self.physio_taus_s):
            raise ParamError("evaluate.physio_taus_s must all be > 0 (seconds)")
        if any(not 0 <= q <= 1 for q in self.example_quantiles) or self.example_window < 0:
            raise ParamError("evaluate.example_quantiles must be in [0, 1], example_window >= 0")
        if min(self.figure_dpi, self.animation_frames, self.animation_fps, self.animation_dpi) < 1:
            raise ParamError("evaluate: figure_dpi and the animation_* values must be >= 1")
        if self.predict_threads < 1:
            raise ParamError("evaluate.predict_threads must be >= 1")
        if self.plot_workers < 1:
            raise ParamError("evaluate.plot_workers must be >= 1 (1 = in-process)")
        if self.runner_resamples < 0:
            raise ParamError("evaluate.runner_resamples must be >= 0 (0 = no intervals)")
        if self.n_scatter < 0:
            raise ParamError("evaluate.n_scatter must be >= 0")
