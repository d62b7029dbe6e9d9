"""`model.onnx` of a bundle: the graph (scalers inside), its export and the parity check.

Population model: `features` [batch, time, F] unscaled -> `hr_bpm` [batch, time].
History model: also `context` [batch, K, C] (unscaled `CONTEXT_FEATURES` of the K most recent
earlier workouts, K = `history.k_max`) and `context_mask` [batch, K] float32 (1 = real entry,
0 = padding; all 0 = cold start). The context scaler is inside the graph too, so a runtime
feeds the same raw numbers `hrpred.personal.context.build_context` returns.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hrpred.export.bundle import (
    ONNX_CONTEXT,
    ONNX_CONTEXT_MASK,
    ONNX_INPUT,
    ONNX_OUTPUT,
    Bundle,
    ExportError,
)
from hrpred.features.scaler import apply_scaler, scaler_arrays

if TYPE_CHECKING:
    import onnxruntime


class Scaled(torch.nn.Module):
    """The population model with the feature scaler in front: unscaled features -> BPM."""

    def __init__(self, model: torch.nn.Module, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.from_numpy(mean))
        self.register_buffer("std", torch.from_numpy(std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(apply_scaler(x, self.mean, self.std))


class ScaledHistory(Scaled):
    """The history model with both scalers in front: (features, context, float mask) -> BPM."""

    def __init__(
        self, model: torch.nn.Module, mean: np.ndarray, std: np.ndarray, history: dict[str, Any]
    ) -> None:
        super().__init__(model, mean, std)
        scaler = history["scaler"]
        self.register_buffer("ctx_mean", torch.tensor(scaler["mean"], dtype=torch.float32))
        self.register_buffer("ctx_std", torch.tensor(scaler["std"], dtype=torch.float32))

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, ctx: torch.Tensor, cmask: torch.Tensor
    ) -> torch.Tensor:
        valid = cmask > 0.5
        scaled = (ctx - self.ctx_mean) / self.ctx_std
        scaled = torch.where(valid.unsqueeze(-1), scaled, torch.zeros_like(scaled))
        return self.model(apply_scaler(x, self.mean, self.std), scaled, valid)


def onnx_module(bundle: Bundle) -> Scaled:
    """What model.onnx holds: the bundle's model with its scaler(s) in front, eval mode."""
    mean, std = scaler_arrays(bundle.features, bundle.scaler)
    if bundle.history is None:
        return Scaled(bundle.model, mean, std).eval()
    return ScaledHistory(bundle.model, mean, std, bundle.history).eval()


def _context_shape(bundle: Bundle) -> tuple[int, int]:
    history = bundle.history or {}
    return int(history["k_max"]), len(history["context_features"])


def export_onnx(bundle: Bundle, path: Path, opset: int) -> str:
    """Write model.onnx with dynamic batch and time axes; returns the exporter used."""
    module = onnx_module(bundle)
    example: tuple[torch.Tensor, ...] = (
        torch.zeros(2, 7, len(bundle.features), dtype=torch.float32),
    )
    names = [ONNX_INPUT]
    axes: dict[str, dict[int, str]] = {
        ONNX_INPUT: {0: "batch", 1: "time"},
        ONNX_OUTPUT: {0: "batch", 1: "time"},
    }
    if bundle.history is not None:
        k, c = _context_shape(bundle)
        mask = torch.zeros(2, k, dtype=torch.float32)
        mask[0, : max(k // 2, 1)] = 1.0  # one row with history, one cold: both paths traced
        example = (*example, torch.ones(2, k, c, dtype=torch.float32), mask)
        names += [ONNX_CONTEXT, ONNX_CONTEXT_MASK]
        axes.update({ONNX_CONTEXT: {0: "batch"}, ONNX_CONTEXT_MASK: {0: "batch"}})
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LSTM batch-size tracer warnings are expected
        try:
            torch.onnx.export(
                module,
                example,
                buf,
                input_names=names,
                output_names=[ONNX_OUTPUT],
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
            )
            exporter = "torchscript"
        except (TypeError, RuntimeError, ImportError):
            buf = io.BytesIO()
            batch, time = torch.export.Dim("batch"), torch.export.Dim("time")
            shapes: dict[str, dict[int, Any]] = {"x": {0: batch, 1: time}}
            if bundle.history is not None:
                shapes.update({"ctx": {0: batch}, "cmask": {0: batch}})
            program = torch.onnx.export(
                module,
                example,
                input_names=names,
                output_names=[ONNX_OUTPUT],
                dynamic_shapes=shapes,
                opset_version=opset,
                dynamo=True,
            )
            program.save(buf)
            exporter = "dynamo"
    path.write_bytes(buf.getvalue())
    return exporter


def write_onnx(
    bundle: Bundle,
    path: Path,
    opset: int,
    check_features: np.ndarray | None,
    tolerance_bpm: float,
    check_context: tuple[np.ndarray, np.ndarray] | None,
) -> None:
    """Export model.onnx, record it in `bundle.config` and check parity (ExportError if off)."""
    config = bundle.config
    exporter = export_onnx(bundle, path, opset)
    config["files"]["onnx"] = path.name
    config["onnx"] = {
        "file": path.name,
        "input": ONNX_INPUT,
        "output": ONNX_OUTPUT,
        "opset": int(opset),
        "exporter": exporter,
        "includes_scaler": True,
        "input_shape": ["batch", "time", len(config["features"])],
        "output_shape": ["batch", "time"],
    }
    if bundle.history is not None:
        k, c = _context_shape(bundle)
        config["onnx"].update(
            context_input=ONNX_CONTEXT,
            context_shape=["batch", k, c],
            context_mask_input=ONNX_CONTEXT_MASK,
            context_mask_shape=["batch", k],
        )
    if check_features is None or not len(check_features):
        return
    x = np.ascontiguousarray(check_features, dtype=np.float32)
    parity: dict[str, Any] = {"workouts": int(len(x))}
    diff = onnx_parity(bundle, path, x)
    if bundle.history is not None:
        if check_context is None:
            raise ExportError("a history model's ONNX parity check needs the rows' contexts")
        warm = onnx_parity(bundle, path, x, check_context)
        parity["with_history"] = int(np.asarray(check_context[1]).any(axis=1).sum())
        parity["max_abs_diff_cold_bpm"] = float(f"{diff:.1e}")
        parity["max_abs_diff_warm_bpm"] = float(f"{warm:.1e}")
        diff = max(diff, warm)
    if not diff <= tolerance_bpm:
        raise ExportError(f"ONNX and PyTorch disagree by {diff:.2e} BPM (> {tolerance_bpm:g})")
    parity.update(max_abs_diff_bpm=float(f"{diff:.1e}"), tolerance_bpm=tolerance_bpm)
    config["onnx"]["parity"] = parity


def onnx_session(path: Path) -> onnxruntime.InferenceSession:
    """A single-threaded CPU ONNX Runtime session (deterministic, like the parity check)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def onnx_parity(
    bundle: Bundle,
    onnx_path: Path,
    features: np.ndarray,
    context: tuple[np.ndarray, np.ndarray] | None = None,
) -> float:
    """Largest |ONNX Runtime - PyTorch| prediction (BPM) over unscaled features [N, T, F];
    a history model is fed `context` (raw values, bool/0-1 mask), or empty contexts if None."""
    session = onnx_session(onnx_path)
    x = np.ascontiguousarray(features, dtype=np.float32)
    feeds = {ONNX_INPUT: x}
    if bundle.history is not None:
        k, c = _context_shape(bundle)
        if context is None:
            values, mask = np.zeros((len(x), k, c), np.float32), np.zeros((len(x), k), bool)
        else:
            values, mask = np.asarray(context[0], np.float32), np.asarray(context[1], bool)
        feeds[ONNX_CONTEXT] = np.ascontiguousarray(values)
        feeds[ONNX_CONTEXT_MASK] = mask.astype(np.float32)
        want = bundle.predict(x, context=None if context is None else (values, mask))
    else:
        want = bundle.predict(x)
    got = session.run([ONNX_OUTPUT], feeds)[0]
    return float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
