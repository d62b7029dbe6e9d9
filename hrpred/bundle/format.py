"""The model bundle's format (`models/bundle/`): its files, the names inside them, and the
reading of config.json's sections that need checking.

A bundle is self-contained: `model.safetensors` (weights, no pickle), `config.json`
(architecture, feature list, scaler, target scale, sampling step, training params, metrics),
`model.onnx` (scaler included: unscaled features [batch, time, F] -> HR in BPM [batch, time])
and `README.md`, a model card rendered from config.json. Loading it needs only these files and
the `hrpred` package (`hrpred.bundle.runtime.load_bundle`); `hrpred.export.writer` writes it.

config.json (`format` BUNDLE_FORMAT, `format_version` BUNDLE_VERSION): `model` (class,
architecture config, n_params), `features`, `binary_features`, `scaler`, `target` (mean, std),
`seq_len`, `sampling` (`step_s`: the grid step, by `step_statistic`, one of STEP_STATISTICS),
`speed` (params clean.speed: `speed_config`), `personal` (params personal: how earlier runs
personalise, `hrpred.personal.config.PersonalConfig`), `history_runs` (params
split.max_history: the most earlier runs a plan reads), `band` (the 80% band's split-conformal constants, `hrpred.uncertainty.
Calibration`; null without a band), `training`, `data`, `metrics`, `files` (weights, onnx,
card); a history-conditioned model adds `history` (architecture, context features, context
scaler), and a bundle with model.onnx adds `onnx` (its inputs, outputs, band constants and
parity, `hrpred.export.onnx_graph`).

model.onnx: input ONNX_INPUT [batch, time, F] (unscaled features) and, for a history model,
ONNX_CONTEXT [batch, K, C] (unscaled context values) and ONNX_CONTEXT_MASK [batch, K] (float32,
1 = a real earlier workout); outputs ONNX_OUTPUT (HR, BPM), ONNX_SPREAD (the per-step Laplace
scale) and, with a band, ONNX_LOWER / ONNX_UPPER [batch, time].
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal, get_args

from hrpred.errors import HrpredError
from hrpred.params import ParamError, from_mapping
from hrpred.store import json_ready
from hrpred.timeseries import SpeedConfig

BUNDLE_FORMAT = "hrpred-bundle"
BUNDLE_VERSION = 2  # 2: personal = the whole params personal section, history_runs
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
ONNX = "model.onnx"
CARD = "README.md"
ONNX_INPUT = "features"
ONNX_CONTEXT = "context"
ONNX_CONTEXT_MASK = "context_mask"
ONNX_OUTPUT = "hr_bpm"
ONNX_SPREAD = "spread_bpm"  # the per-step Laplace scale b (BPM)
ONNX_LOWER = "hr_p10"  # lower end of the calibrated band (hr_bpm - q * spread_bpm), factor 1
ONNX_UPPER = "hr_p90"  # upper end (hr_bpm + q * spread_bpm), without the runner scale

StepStatistic = Literal["median", "mean", "mean_active"]
STEP_STATISTICS: tuple[str, ...] = get_args(StepStatistic)


class BundleError(HrpredError, ValueError):
    """A bundle directory that cannot be loaded; the message is one line."""


def dumps_json(obj: Any) -> str:
    """Deterministic JSON text (sorted keys, trailing newline)."""
    return json.dumps(json_ready(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"


def speed_config(config: Mapping[str, Any]) -> SpeedConfig:
    """The bundle's speed rules; BundleError when absent or invalid (an older bundle)."""
    try:
        return from_mapping(SpeedConfig, config.get("speed"), "speed", CONFIG)
    except ParamError as exc:
        raise BundleError(
            f"bundle has no valid speed rules ({exc}): re-export it with `dvc repro export`"
        ) from None
