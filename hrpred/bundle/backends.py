"""The bundle's prediction backends: ONNX Runtime over model.onnx, or the PyTorch model built
from model.safetensors; which one `hrpred.bundle.runtime.load_bundle` picks (`backend_choice`,
`onnx_backend`) and the weights read without torch (`weights_readable`,
`file_weight_records`).

torch, safetensors and onnxruntime are imported inside the functions that use them: predicting
with the ONNX backend never imports torch (tests/test_cli.py checks it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hrpred.bundle.format import (
    ONNX,
    ONNX_CONTEXT,
    ONNX_CONTEXT_MASK,
    ONNX_INPUT,
    ONNX_OUTPUT,
    ONNX_SPREAD,
    BundleError,
)

if TYPE_CHECKING:
    import onnxruntime
    import torch

BACKEND_ENV = "HRPRED_BACKEND"  # "torch": never ONNX Runtime; "onnx": only it; unset/"auto"
BACKENDS = ("auto", "onnx", "torch")
# safetensors dtype -> torch's name of it (`Bundle.weight_records` without torch)
_TORCH_DTYPES = {
    "F64": "torch.float64", "F32": "torch.float32", "F16": "torch.float16",
    "I64": "torch.int64", "I32": "torch.int32", "I16": "torch.int16", "I8": "torch.int8",
    "U8": "torch.uint8", "BOOL": "torch.bool",
}  # fmt: skip


def model_from_config(config: Mapping[str, Any]) -> torch.nn.Module:
    """A fresh HRLSTM (or HistoryHRModel, with a `history` section) with the bundle's
    architecture and target scale."""
    from hrpred.model import HistoryHRModel, build_model  # defers torch

    target = config["target"]
    mean, std = float(target["mean"]), float(target["std"])
    if "history" in config:
        return HistoryHRModel(config["model"]["config"], config["history"], mean, std)
    return build_model(config["model"]["config"], mean, std)


def backend_choice(backend: str | None) -> str:
    choice = (os.environ.get(BACKEND_ENV, "") if backend is None else backend).strip().lower()
    choice = choice or "auto"
    if choice not in BACKENDS:
        where = f"{BACKEND_ENV}={choice}" if backend is None else f"backend {choice!r}"
        raise BundleError(f"{where}: must be one of {', '.join(BACKENDS)}")
    return choice


def onnx_backend(
    directory: Path, config: Mapping[str, Any], choice: str
) -> onnxruntime.InferenceSession | None:
    """The ONNX Runtime session of the bundle's model.onnx, or None for the torch backend:
    `choice` torch, or auto with no model.onnx, no onnxruntime or a graph without the inputs
    and outputs predictions need (an older bundle); BundleError when `choice` is onnx and it
    cannot be, or when model.onnx does not load."""
    if choice == "torch":
        return None
    name = (config.get("files") or {}).get("onnx")
    path = directory / str(name) if name else None
    why = None
    if path is None or not path.is_file():
        why = f"{directory} has no {ONNX}"
    else:
        try:
            import onnxruntime  # noqa: F401 - only whether it imports
        except ImportError:
            why = "onnxruntime is not installed"
    if why is None and path is not None:
        try:
            session = onnx_session(path)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BundleError(
                f"{path}: cannot load the ONNX graph ({first}); re-export it with "
                f"`dvc repro export` or set {BACKEND_ENV}=torch"
            ) from None
        why = _graph_mismatch(session, config)
        if why is None:
            return session
    if choice == "onnx":
        raise BundleError(f"{BACKEND_ENV}=onnx: {why}")
    return None


def _graph_mismatch(session: onnxruntime.InferenceSession, config: Mapping[str, Any]) -> str | None:
    """Why the graph cannot serve `Bundle.predict`/`predict_spread`, or None when it can."""
    inputs = {i.name: i.shape for i in session.get_inputs()}
    outputs = {o.name for o in session.get_outputs()}
    want = [ONNX_INPUT] + ([ONNX_CONTEXT, ONNX_CONTEXT_MASK] if "history" in config else [])
    missing = [n for n in want if n not in inputs] + [
        n for n in (ONNX_OUTPUT, ONNX_SPREAD) if n not in outputs
    ]
    if missing or len(inputs) != len(want):
        return (
            f"{ONNX} has inputs {sorted(inputs)} and outputs {sorted(outputs)} (missing {missing})"
        )
    if inputs[ONNX_INPUT][-1] != len(config["features"]):
        n = len(config["features"])
        return f"{ONNX} takes {inputs[ONNX_INPUT][-1]} features, config.json lists {n}"
    if "history" in config:
        k, c = inputs[ONNX_CONTEXT][1:]
        if not isinstance(k, int) or c != len(config["history"]["context_features"]):
            return f"{ONNX} context input {inputs[ONNX_CONTEXT]} does not fit config.json"
    return None


def graph_k(session: onnxruntime.InferenceSession) -> int:
    """K, the number of context entries the graph's `context` input takes."""
    return int(next(i.shape[1] for i in session.get_inputs() if i.name == ONNX_CONTEXT))


def onnx_session(path: Path) -> onnxruntime.InferenceSession:
    """A single-threaded CPU ONNX Runtime session (deterministic, like the parity check; one
    sequence at a time is latency-bound, as `hrpred predict` runs torch)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def load_model(config: Mapping[str, Any], weights: Path, threads: int | None) -> torch.nn.Module:
    """The eval-mode PyTorch model of `config` with the weights of `weights` (BundleError)."""
    from safetensors.torch import load_file

    if threads is not None:
        import torch

        torch.set_num_threads(int(threads))
    try:
        model = model_from_config(config)
        model.load_state_dict(load_file(str(weights)), strict=True)
    except Exception as exc:  # noqa: BLE001 - safetensors/torch raise their own types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BundleError(f"{weights}: cannot load the weights ({first})") from None
    model.eval()
    return model


def weights_readable(weights: Path) -> bool:
    """Whether `weights` reads as a safetensors file (without torch)."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="numpy") as f:
            f.keys()
    except Exception:  # noqa: BLE001 - safetensors raises its own types
        return False
    return True


def file_weight_records(weights: Path) -> list[tuple[str, str, tuple[int, ...], bytes]] | None:
    """`Bundle.weight_records` read from a safetensors file without torch; None when the file
    does not read, or holds a dtype numpy cannot (the caller then uses torch)."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="numpy") as f:
            names = sorted(f.keys())
            dtypes = {n: f.get_slice(n).get_dtype() for n in names}
            if any(d not in _TORCH_DTYPES for d in dtypes.values()):
                return None
            out = []
            for n in names:
                arr = f.get_tensor(n)  # tobytes: C order, as torch's contiguous view
                out.append((n, _TORCH_DTYPES[dtypes[n]], tuple(arr.shape), arr.tobytes()))
            return out
    except Exception:  # noqa: BLE001 - safetensors raises its own types
        return None
