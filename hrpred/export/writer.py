"""Writing a model bundle (`hrpred.bundle.format`): config.json's content from the training
checkpoint, evaluate's metrics and data facts (`build_config`, `sampling_stats`), the weights,
model.onnx (`hrpred.export.onnx_graph`, its parity checked) and the model card
(`hrpred.export.cards`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hrpred.bundle.backends import model_from_config
from hrpred.bundle.format import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    CARD,
    CONFIG,
    ONNX,
    STEP_STATISTICS,
    WEIGHTS,
    BundleError,
    dumps_json,
)
from hrpred.bundle.runtime import Bundle
from hrpred.export.cards import render_model_card
from hrpred.export.errors import ExportError
from hrpred.personal.config import PersonalConfig
from hrpred.store import json_ready
from hrpred.timeseries import SpeedConfig

if TYPE_CHECKING:
    import torch


def sampling_stats(elapsed: np.ndarray, lengths: np.ndarray, pause_s: float) -> dict[str, float]:
    """Step statistics (s) of the rows the model trained on.

    `elapsed` is [N, T] seconds since start, `lengths` the real steps of each row (the rest is
    padding). Only positive steps count (a repeated time is not a step). `mean_active_step_s`
    leaves out steps longer than `pause_s` (recording pauses), so it is the time a step spans
    while running: lags and rolling windows count steps, and this is what they span on average.
    """
    steps = [np.diff(elapsed[i, : int(n)].astype(np.float64)) for i, n in enumerate(lengths)]
    d = np.concatenate(steps) if steps else np.zeros(0)
    d = d[np.isfinite(d) & (d > 0)]
    if d.size == 0:
        raise ExportError("no positive time steps in the training rows: cannot infer sampling")
    active = d[d <= pause_s]
    return {
        "median_step_s": float(np.median(d)),
        "mean_step_s": float(d.mean()),
        "mean_active_step_s": float(active.mean()) if active.size else float(np.median(d)),
        "pause_s": float(pause_s),
        "p10_step_s": float(np.percentile(d, 10)),
        "p90_step_s": float(np.percentile(d, 90)),
        "n_steps": int(d.size),
    }


def build_config(
    ckpt: Mapping[str, Any],
    metrics: Mapping[str, Any],
    sampling: Mapping[str, float],
    step_statistic: str,
    data: Mapping[str, Any],
    binary_features: Sequence[str],
    *,
    speed: SpeedConfig,
    personal: PersonalConfig,
    history_runs: int,
    band: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """config.json content from the training checkpoint, evaluate metrics and data facts.

    `speed` is params.yaml clean.speed: `hrpred predict` derives speed with these rules.
    `personal` is params personal and `history_runs` split.max_history: how earlier runs
    personalise a prediction, as evaluate scored them (`hrpred.personal.engine`).
    `band`: models/calibration.json (the 80% band's conformal constants; None: no band).
    """
    if step_statistic not in STEP_STATISTICS:
        raise ExportError(
            f"step_statistic must be one of {STEP_STATISTICS}, got {step_statistic!r}"
        )
    features = [str(f) for f in ckpt["features"]]
    step_s = float(sampling[f"{step_statistic}_step_s"])
    extra = {"history": dict(ckpt["history"])} if "history" in ckpt else {}
    return json_ready(
        {
            **extra,
            "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_VERSION,
            "model": {
                "class": "HistoryHRModel" if extra else "HRLSTM",
                "config": dict(ckpt["config"]),
                "n_params": ckpt.get("n_params"),
                "output": "heart rate (BPM) at every step",
            },
            "features": features,
            "binary_features": [f for f in features if f in set(binary_features)],
            "scaler": {k: dict(v) for k, v in ckpt["scaler"].items()},
            "target": {
                "name": "heart_rate",
                "unit": "BPM",
                "mean": float(ckpt["target_mean"]),
                "std": float(ckpt["target_std"]),
            },
            "seq_len": int(ckpt["seq_len"]),
            "sampling": {
                "step_s": step_s,
                "step_statistic": step_statistic,
                **dict(sampling),
                "note": "inputs are resampled to a uniform grid of step_s seconds: every "
                "lag/rolling feature counts steps of the training data",
            },
            "speed": asdict(speed),
            "personal": personal.to_json(),
            "history_runs": int(history_runs),
            "band": dict(band) if band is not None else None,
            "training": {
                "best_epoch": ckpt.get("best_epoch"),
                "val": dict(ckpt.get("val", {})),
                "params": dict(ckpt.get("train_params", {})),
            },
            "data": dict(data),
            "metrics": dict(metrics),
            "files": {"weights": WEIGHTS, "onnx": None, "card": CARD},
        }
    )


def save_weights(state_dict: Mapping[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    save_file(tensors, str(path), metadata={"format": BUNDLE_FORMAT})


def write_bundle(
    out_dir: Path,
    state_dict: Mapping[str, torch.Tensor],
    config: dict[str, Any],
    *,
    onnx: bool,
    opset: int = 17,
    check_features: np.ndarray | None = None,
    tolerance_bpm: float = 1e-3,
    check_context: tuple[np.ndarray, np.ndarray] | None = None,
) -> Bundle:
    """Write weights, (optionally) ONNX, config.json and the model card; return the bundle.

    With `check_features` (unscaled [N, T, F]), the ONNX model is run with ONNX Runtime on
    them and must agree with PyTorch within `tolerance_bpm` on every output (HR, spread and,
    with a band, its ends); the differences are recorded. A history model is checked with
    `check_context` (raw values [N, K, C], mask [N, K]: the rows' real histories) and with
    empty contexts (cold start). A malformed `band` fails before anything is written.
    """
    model = model_from_config(config)
    model.load_state_dict(dict(state_dict), strict=True)
    model.eval()
    bundle = Bundle(config, model, out_dir)  # the torch backend: parity's reference
    try:
        bundle.calibration  # noqa: B018 - the property checks config["band"]
    except BundleError as exc:
        raise ExportError(str(exc)) from None
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in (WEIGHTS, CONFIG, ONNX, CARD):
        (out_dir / stale).unlink(missing_ok=True)
    save_weights(state_dict, out_dir / WEIGHTS)
    if onnx:
        from hrpred.export.onnx_graph import write_onnx  # defers torch (and torch.onnx)

        write_onnx(bundle, out_dir / ONNX, opset, check_features, tolerance_bpm, check_context)
    text = dumps_json(config)
    (out_dir / CONFIG).write_text(text)
    # the card is rendered from the file's content (sorted keys), as a reader would see it
    (out_dir / CARD).write_text(render_model_card(json.loads(text)))
    return bundle
