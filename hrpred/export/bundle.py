"""The exported model bundle (`models/bundle/`): write it, read it, describe it.

A bundle is self-contained: `model.safetensors` (weights, no pickle), `config.json`
(architecture, feature list, scaler, target scale, sampling step, training params, metrics),
`model.onnx` (scaler included: unscaled features [batch, time, F] -> HR in BPM [batch, time])
and `README.md`, a model card rendered from config.json. `load_bundle` needs only these files
and the `hrpred` package.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from hrpred.errors import HrpredError
from hrpred.export.cards import render_model_card
from hrpred.store import json_ready
from hrpred.timeseries import SpeedConfig

if TYPE_CHECKING:
    import torch

BUNDLE_FORMAT = "hrpred-bundle"
BUNDLE_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
ONNX = "model.onnx"
CARD = "README.md"
ONNX_INPUT = "features"
ONNX_OUTPUT = "hr_bpm"


class BundleError(HrpredError, ValueError):
    """A bundle directory that cannot be loaded; the message is one line."""


class ExportError(HrpredError, ValueError):
    """The bundle or the dataset cannot be written from these inputs (one line)."""


# --------------------------------------------------------------------------- sampling


StepStatistic = Literal["median", "mean", "mean_active"]
STEP_STATISTICS: tuple[str, ...] = get_args(StepStatistic)


def sampling_stats(
    elapsed: np.ndarray, lengths: np.ndarray, pause_s: float = 60.0
) -> dict[str, float]:
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


# --------------------------------------------------------------------------- config


def build_config(
    ckpt: Mapping[str, Any],
    metrics: Mapping[str, Any],
    sampling: Mapping[str, float],
    step_statistic: str,
    data: Mapping[str, Any],
    binary_features: Sequence[str],
    *,
    speed: SpeedConfig,
) -> dict[str, Any]:
    """config.json content from the training checkpoint, evaluate metrics and data facts.

    `speed` is params.yaml clean.speed: `hrpred predict` derives speed with these rules.
    """
    if step_statistic not in STEP_STATISTICS:
        raise ExportError(
            f"step_statistic must be one of {STEP_STATISTICS}, got {step_statistic!r}"
        )
    features = [str(f) for f in ckpt["features"]]
    step_s = float(sampling[f"{step_statistic}_step_s"])
    return json_ready(
        {
            "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_VERSION,
            "model": {
                "class": "HRLSTM",
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


def dumps_json(obj: Any) -> str:
    """Deterministic JSON text (sorted keys, trailing newline)."""
    return json.dumps(json_ready(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"


# --------------------------------------------------------------------------- bundle object


@dataclass
class Bundle:
    """A loaded bundle: the eval-mode model plus everything needed to feed it."""

    config: dict[str, Any]
    model: torch.nn.Module
    path: Path | None = None

    @property
    def features(self) -> list[str]:
        return list(self.config["features"])

    @property
    def scaler(self) -> dict[str, dict[str, float]]:
        return self.config["scaler"]

    @property
    def step_s(self) -> float:
        return float(self.config["sampling"]["step_s"])

    @property
    def speed(self) -> SpeedConfig:
        """The clean stage's speed rules the model was trained with (params clean.speed)."""
        return speed_config(self.config)

    @property
    def seq_len(self) -> int:
        return int(self.config["seq_len"])

    @property
    def metrics(self) -> dict[str, Any]:
        return self.config.get("metrics", {})

    def checkpoint_view(self) -> dict[str, Any]:
        """The checkpoint keys `hrpred.model.predict` reads (features, scaler)."""
        return {"features": self.features, "scaler": self.scaler}

    def predict(self, features_unscaled: np.ndarray) -> np.ndarray:
        """HR (BPM) for unscaled features [T, F] -> [T] or [N, T, F] -> [N, T]."""
        from hrpred.model import predict

        return predict(self.model, self.checkpoint_view(), features_unscaled)


def speed_config(config: Mapping[str, Any]) -> SpeedConfig:
    """The bundle's speed rules; BundleError when absent or invalid (an older bundle)."""
    from hrpred.params import ParamError, from_mapping

    try:
        return from_mapping(SpeedConfig, config.get("speed"), "speed", CONFIG)
    except ParamError as exc:
        raise BundleError(
            f"bundle has no valid speed rules ({exc}): re-export it with `dvc repro export`"
        ) from None


def model_from_config(config: Mapping[str, Any]) -> torch.nn.Module:
    """A fresh HRLSTM with the bundle's architecture and target scale."""
    from hrpred.model import build_model

    target = config["target"]
    return build_model(config["model"]["config"], float(target["mean"]), float(target["std"]))


def load_bundle(directory: str | Path) -> Bundle:
    """Load `model.safetensors` + `config.json` from a bundle directory (no pickle)."""
    directory = Path(directory)
    cfg_path, weights = directory / CONFIG, directory / WEIGHTS
    if not directory.is_dir():
        raise BundleError(
            f"no model bundle at {directory}: run `dvc repro export` or pass --bundle"
        )
    for p in (cfg_path, weights):
        if not p.exists():
            raise BundleError(f"{directory} is not a complete model bundle: {p.name} missing")
    try:
        config = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{cfg_path}: unreadable ({exc})") from None
    if config.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{cfg_path}: not an hrpred bundle config")
    if int(config.get("format_version", 0)) > BUNDLE_VERSION:
        raise BundleError(
            f"{cfg_path}: bundle format {config.get('format_version')} is newer than this "
            f"hrpred ({BUNDLE_VERSION}); upgrade hrpred"
        )
    from safetensors.torch import load_file

    from hrpred.features.registry import REGISTRY

    unknown = [f for f in config["features"] if f not in REGISTRY]
    if unknown:
        raise BundleError(f"{cfg_path}: features {unknown} are unknown to this hrpred version")
    speed_config(config)
    try:
        model = model_from_config(config)
        model.load_state_dict(load_file(str(weights)), strict=True)
    except Exception as exc:  # noqa: BLE001 - safetensors/torch raise their own types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BundleError(f"{weights}: cannot load the weights ({first})") from None
    model.eval()
    return Bundle(config=config, model=model, path=directory)


# --------------------------------------------------------------------------- writing


def save_weights(state_dict: Mapping[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    save_file(tensors, str(path), metadata={"format": BUNDLE_FORMAT})


def onnx_module(bundle: Bundle) -> torch.nn.Module:
    """The model with the scaler in front: unscaled features -> BPM (what model.onnx holds)."""
    import torch

    from hrpred.features.scaler import apply_scaler, scaler_arrays

    mean, std = scaler_arrays(bundle.features, bundle.scaler)

    class Scaled(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model
            self.register_buffer("mean", torch.from_numpy(mean))
            self.register_buffer("std", torch.from_numpy(std))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(apply_scaler(x, self.mean, self.std))

    return Scaled(bundle.model).eval()


def export_onnx(bundle: Bundle, path: Path, opset: int) -> str:
    """Write model.onnx with dynamic batch and time axes; returns the exporter used."""
    import io
    import warnings

    import torch

    module = onnx_module(bundle)
    example = torch.zeros(2, 7, len(bundle.features), dtype=torch.float32)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LSTM batch-size tracer warnings are expected
        try:
            torch.onnx.export(
                module,
                (example,),
                buf,
                input_names=[ONNX_INPUT],
                output_names=[ONNX_OUTPUT],
                dynamic_axes={
                    ONNX_INPUT: {0: "batch", 1: "time"},
                    ONNX_OUTPUT: {0: "batch", 1: "time"},
                },
                opset_version=opset,
                dynamo=False,
            )
            exporter = "torchscript"
        except (TypeError, RuntimeError, ImportError):
            buf = io.BytesIO()
            batch, time = torch.export.Dim("batch"), torch.export.Dim("time")
            program = torch.onnx.export(
                module,
                (example,),
                input_names=[ONNX_INPUT],
                output_names=[ONNX_OUTPUT],
                dynamic_shapes={"x": {0: batch, 1: time}},
                opset_version=opset,
                dynamo=True,
            )
            program.save(buf)
            exporter = "dynamo"
    path.write_bytes(buf.getvalue())
    return exporter


def write_bundle(
    out_dir: Path,
    state_dict: Mapping[str, torch.Tensor],
    config: dict[str, Any],
    *,
    onnx: bool,
    opset: int = 17,
    check_features: np.ndarray | None = None,
    tolerance_bpm: float = 1e-3,
) -> Bundle:
    """Write weights, (optionally) ONNX, config.json and the model card; return the bundle.

    With `check_features` (unscaled [N, T, F]), the ONNX model is run with ONNX Runtime on
    them and must agree with PyTorch within `tolerance_bpm`; the difference is recorded.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in (WEIGHTS, CONFIG, ONNX, CARD):
        (out_dir / stale).unlink(missing_ok=True)
    save_weights(state_dict, out_dir / WEIGHTS)
    model = model_from_config(config)
    model.load_state_dict(dict(state_dict), strict=True)
    model.eval()
    bundle = Bundle(config=config, model=model, path=out_dir)
    if onnx:
        exporter = export_onnx(bundle, out_dir / ONNX, opset)
        config["files"]["onnx"] = ONNX
        config["onnx"] = {
            "file": ONNX,
            "input": ONNX_INPUT,
            "output": ONNX_OUTPUT,
            "opset": int(opset),
            "exporter": exporter,
            "includes_scaler": True,
            "input_shape": ["batch", "time", len(config["features"])],
            "output_shape": ["batch", "time"],
        }
        if check_features is not None and len(check_features):
            diff = onnx_parity(bundle, out_dir / ONNX, check_features)
            if not diff <= tolerance_bpm:
                raise ExportError(
                    f"ONNX and PyTorch disagree by {diff:.2e} BPM (> {tolerance_bpm:g})"
                )
            config["onnx"]["parity"] = {
                "workouts": int(len(check_features)),
                "max_abs_diff_bpm": float(f"{diff:.1e}"),
                "tolerance_bpm": tolerance_bpm,
            }
    text = dumps_json(config)
    (out_dir / CONFIG).write_text(text)
    # the card is rendered from the file's content (sorted keys), as a reader would see it
    (out_dir / CARD).write_text(render_model_card(json.loads(text)))
    return bundle


def onnx_parity(bundle: Bundle, onnx_path: Path, features: np.ndarray) -> float:
    """Largest |ONNX Runtime - PyTorch| prediction (BPM) over unscaled features [N, T, F]."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    x = np.ascontiguousarray(features, dtype=np.float32)
    got = session.run([ONNX_OUTPUT], {ONNX_INPUT: x})[0]
    want = bundle.predict(x)
    return float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
