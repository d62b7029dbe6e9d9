"""`model.onnx` of a bundle: the graph (scalers inside), its export and the parity check.

Population model: `features` [batch, time, F] unscaled -> `hr_bpm` [batch, time].
History model: also `context` [batch, K, C] (unscaled `CONTEXT_FEATURES` of the K most recent
earlier workouts, K = `history.k_max`) and `context_mask` [batch, K] float32 (1 = real entry,
0 = padding; all 0 = cold start). The context scaler is inside the graph too, so a runtime
feeds the same raw numbers `hrpred.personal.context.build_context` returns.

Every graph also outputs `spread_bpm` [batch, time] (the spread head's Laplace scale, BPM) and,
when the bundle has a band (config.json `band`), `hr_p10` / `hr_p90` [batch, time] =
hr_bpm -/+ q * spread_bpm: the calibrated band of `Bundle.predict_band`. The step multipliers q
are constants of the graph: a history graph looks q up by the number of real context entries
(the count of `context_mask` > 0.5, 0..K, mapped to its history bucket at export time); a
population graph uses the cold-start ("0", else pooled) multiplier. The band has no runner
scale (`personal.runner_scale`, factor 1): it needs the runner's earlier runs' scores, which a
caller applies by multiplying the half-width. `hr_bpm` is computed exactly as before: the band
outputs only add nodes beside it.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrpred.bundle.backends import onnx_session
from hrpred.bundle.format import (
    ONNX_CONTEXT,
    ONNX_CONTEXT_MASK,
    ONNX_INPUT,
    ONNX_LOWER,
    ONNX_OUTPUT,
    ONNX_SPREAD,
    ONNX_UPPER,
)
from hrpred.bundle.runtime import Bundle
from hrpred.export.errors import ExportError
from hrpred.features.scaler import apply_scaler, scaler_arrays

Outputs = tuple[torch.Tensor, ...]


class Scaled(torch.nn.Module):
    """The population model with the feature scaler in front: unscaled features -> (BPM,
    spread[, lower, upper]); `q` the band's step multiplier (None: no band outputs)."""

    def __init__(
        self, model: torch.nn.Module, mean: np.ndarray, std: np.ndarray, q: float | None = None
    ) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.from_numpy(mean))
        self.register_buffer("std", torch.from_numpy(std))
        self.banded = q is not None
        self.register_buffer("q", torch.tensor(float(q or 0.0), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> Outputs:
        hr, spread = self.model(apply_scaler(x, self.mean, self.std), with_spread=True)
        return self.outputs(hr, spread, self.q)

    def outputs(self, hr: torch.Tensor, spread: torch.Tensor, q: torch.Tensor) -> Outputs:
        """(hr, spread) and, with a band, hr -/+ q * spread (`q` scalar or [batch])."""
        if not self.banded:
            return hr, spread
        half = (q.unsqueeze(-1) if q.dim() else q) * spread
        return hr, spread, hr - half, hr + half


class ScaledHistory(Scaled):
    """The history model with both scalers in front: (features, context, float mask) -> (BPM,
    spread[, lower, upper]); `q_by_count[n]` the step multiplier for n real context entries."""

    def __init__(
        self,
        model: torch.nn.Module,
        mean: np.ndarray,
        std: np.ndarray,
        history: dict[str, Any],
        q_by_count: np.ndarray | None = None,
    ) -> None:
        super().__init__(model, mean, std, None if q_by_count is None else 0.0)
        scaler = history["scaler"]
        self.register_buffer("ctx_mean", torch.tensor(scaler["mean"], dtype=torch.float32))
        self.register_buffer("ctx_std", torch.tensor(scaler["std"], dtype=torch.float32))
        table = np.zeros(int(history["k_max"]) + 1) if q_by_count is None else q_by_count
        self.register_buffer("q_by_count", torch.tensor(table, dtype=torch.float32))

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, ctx: torch.Tensor, cmask: torch.Tensor
    ) -> Outputs:
        valid = cmask > 0.5
        scaled = (ctx - self.ctx_mean) / self.ctx_std
        scaled = torch.where(valid.unsqueeze(-1), scaled, torch.zeros_like(scaled))
        hr, spread = self.model(
            apply_scaler(x, self.mean, self.std), scaled, valid, with_spread=True
        )
        return self.outputs(hr, spread, self.q_by_count[valid.sum(dim=-1)])


def step_table(bundle: Bundle) -> np.ndarray | None:
    """The band's step multiplier baked into the graph: [K + 1] by the number of real context
    entries (0..K) for a history model, [1] (cold start) for a population model; None without
    a band."""
    cal = bundle.calibration
    if cal is None:
        return None
    counts = np.arange(_context_shape(bundle)[0] + 1) if bundle.history is not None else [0]
    return cal.multipliers(np.asarray(counts, dtype=np.int64))


def onnx_module(bundle: Bundle) -> Scaled:
    """What model.onnx holds: the bundle's model with its scaler(s) in front and the band's
    multipliers (if any), eval mode."""
    mean, std = scaler_arrays(bundle.features, bundle.scaler)
    table = step_table(bundle)
    if bundle.history is None:
        q = None if table is None else float(table[0])
        return Scaled(bundle.model, mean, std, q).eval()
    return ScaledHistory(bundle.model, mean, std, bundle.history, table).eval()


def output_names(bundle: Bundle) -> list[str]:
    """The graph's outputs, in order: hr_bpm, spread_bpm (and hr_p10, hr_p90 with a band)."""
    band = [ONNX_LOWER, ONNX_UPPER] if bundle.calibration is not None else []
    return [ONNX_OUTPUT, ONNX_SPREAD, *band]


def _context_shape(bundle: Bundle) -> tuple[int, int]:
    history = bundle.history or {}
    return int(history["k_max"]), len(history["context_features"])


def export_onnx(bundle: Bundle, path: Path, opset: int) -> str:
    """Write model.onnx with dynamic batch and time axes; returns the exporter used."""
    module = onnx_module(bundle)
    outputs = output_names(bundle)
    example: tuple[torch.Tensor, ...] = (
        torch.zeros(2, 7, len(bundle.features), dtype=torch.float32),
    )
    names = [ONNX_INPUT]
    axes: dict[str, dict[int, str]] = {ONNX_INPUT: {0: "batch", 1: "time"}}
    axes.update({name: {0: "batch", 1: "time"} for name in outputs})
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
                output_names=outputs,
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
                output_names=outputs,
                dynamic_shapes=shapes,
                opset_version=opset,
                dynamo=True,
            )
            program.save(buf)
            exporter = "dynamo"
    path.write_bytes(buf.getvalue())
    return exporter


def _onnx_entry(bundle: Bundle, path: Path, opset: int, exporter: str) -> dict[str, Any]:
    """config.json `onnx`: the file, its inputs and outputs, and the band's constants."""
    config = bundle.config
    entry: dict[str, Any] = {
        "file": path.name,
        "input": ONNX_INPUT,
        "output": ONNX_OUTPUT,
        "outputs": output_names(bundle),
        "spread_output": ONNX_SPREAD,
        "opset": int(opset),
        "exporter": exporter,
        "includes_scaler": True,
        "input_shape": ["batch", "time", len(config["features"])],
        "output_shape": ["batch", "time"],
    }
    if bundle.history is not None:
        k, c = _context_shape(bundle)
        entry.update(
            context_input=ONNX_CONTEXT,
            context_shape=["batch", k, c],
            context_mask_input=ONNX_CONTEXT_MASK,
            context_mask_shape=["batch", k],
        )
    table, cal = step_table(bundle), bundle.calibration
    if table is not None and cal is not None:
        entry["band"] = {
            "level": cal.level,
            "lower_output": ONNX_LOWER,
            "upper_output": ONNX_UPPER,
            "step_multiplier_by_context_count": [float(v) for v in table],
        }
    return entry


def write_onnx(
    bundle: Bundle,
    path: Path,
    opset: int,
    check_features: np.ndarray | None,
    tolerance_bpm: float,
    check_context: tuple[np.ndarray, np.ndarray] | None,
) -> None:
    """Export model.onnx, record it in `bundle.config` and check parity of every output (HR,
    spread, band; ExportError if one is off by more than `tolerance_bpm`)."""
    config = bundle.config
    exporter = export_onnx(bundle, path, opset)
    config["files"]["onnx"] = path.name
    config["onnx"] = _onnx_entry(bundle, path, opset, exporter)
    if check_features is None or not len(check_features):
        return
    x = np.ascontiguousarray(check_features, dtype=np.float32)
    parity: dict[str, Any] = {"workouts": int(len(x))}
    runs = {"cold": onnx_parity(bundle, path, x)}
    if bundle.history is not None:
        if check_context is None:
            raise ExportError("a history model's ONNX parity check needs the rows' contexts")
        runs["warm"] = onnx_parity(bundle, path, x, check_context)
        parity["with_history"] = int(np.asarray(check_context[1]).any(axis=1).sum())
        for name, diffs in runs.items():
            parity[f"max_abs_diff_{name}_bpm"] = _rounded(max(diffs.values()))
    by_output = {k: max(d[k] for d in runs.values()) for k in runs["cold"]}
    diff = max(by_output.values())
    if not diff <= tolerance_bpm:
        worst = max(by_output, key=lambda k: by_output[k])
        raise ExportError(
            f"ONNX and PyTorch disagree by {diff:.2e} BPM on {worst} (> {tolerance_bpm:g})"
        )
    parity.update(
        max_abs_diff_bpm=_rounded(diff),
        by_output_bpm={k: _rounded(v) for k, v in by_output.items()},
        tolerance_bpm=tolerance_bpm,
    )
    config["onnx"]["parity"] = parity


def _rounded(diff: float) -> float:
    """A parity difference as recorded (2 significant digits: stable bytes across runs)."""
    return float(f"{diff:.1e}")


def onnx_parity(
    bundle: Bundle,
    onnx_path: Path,
    features: np.ndarray,
    context: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, float]:
    """Largest |ONNX Runtime - PyTorch| (BPM) of each output over unscaled features [N, T, F]
    ({output name: difference}); the PyTorch side is `Bundle.predict_spread` and
    `Bundle.band` (of the torch backend, whatever `bundle`'s). A history model is fed
    `context` (raw values, bool/0-1 mask), or empty contexts if None."""
    bundle = bundle.on_torch()
    session = onnx_session(onnx_path)
    x = np.ascontiguousarray(features, dtype=np.float32)
    feeds = {ONNX_INPUT: x}
    ctx = None
    if bundle.history is not None:
        k, c = _context_shape(bundle)
        if context is None:
            values, mask = np.zeros((len(x), k, c), np.float32), np.zeros((len(x), k), bool)
        else:
            values, mask = np.asarray(context[0], np.float32), np.asarray(context[1], bool)
        feeds[ONNX_CONTEXT] = np.ascontiguousarray(values)
        feeds[ONNX_CONTEXT_MASK] = mask.astype(np.float32)
        ctx = None if context is None else (values, mask)
    hr, spread = bundle.predict_spread(x, context=ctx)
    want = {ONNX_OUTPUT: hr, ONNX_SPREAD: spread}
    if bundle.calibration is not None:
        b = bundle.band(hr, spread, bundle.context_counts(ctx, len(x)))
        want[ONNX_LOWER], want[ONNX_UPPER] = b.lower, b.upper
    got = dict(zip(want, session.run(list(want), feeds), strict=True))
    return {
        k: float(np.max(np.abs(got[k].astype(np.float64) - want[k].astype(np.float64))))
        for k in want
    }
