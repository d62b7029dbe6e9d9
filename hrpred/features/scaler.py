"""The one feature scaler: the train-split (mean, std) of every feature, applied the same way
by training, evaluation (the ridge baseline), export (inside model.onnx) and prediction.

`scaler_arrays` turns data/split/scaler.json's `{name: {mean, std}}` into float32 vectors in
feature order; `apply_scaler` works on numpy arrays and torch tensors alike (operators only,
computed in float32), so train/serve skew cannot creep in between two implementations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

A = TypeVar("A")  # np.ndarray or torch.Tensor


def scaler_arrays(
    names: Sequence[str], scaler: Mapping[str, Mapping[str, float]]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature (mean, std) float32 vectors in `names` order.

    Features absent from the scaler (binary ones) get mean 0 / std 1, i.e. pass through.
    A zero or non-finite std (constant feature) is replaced by 1 so scaling never divides by 0.
    """
    mean = np.zeros(len(names), dtype=np.float64)
    std = np.ones(len(names), dtype=np.float64)
    for i, name in enumerate(names):
        if name in scaler:
            m = float(scaler[name]["mean"])
            s = float(scaler[name]["std"])
            mean[i] = m if math.isfinite(m) else 0.0
            std[i] = s if math.isfinite(s) and s > 0 else 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def apply_scaler(x: A, mean: Any, std: Any) -> A:
    """(x - mean) / std over the last axis in float32; non-finite values become 0 (the train
    mean). `x` is a numpy array (with numpy `mean`/`std`) or a torch tensor (with tensors).

    Padding steps may hold NaN; zeroing them keeps the recurrent state finite (they are masked
    out of the loss and metrics anyway).
    """
    if isinstance(x, np.ndarray):
        scaled = (np.asarray(x, dtype=np.float32) - mean) / std
        return np.nan_to_num(scaled, nan=0.0, posinf=0.0, neginf=0.0)
    return ((x.float() - mean) / std).nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)


def batch_of_rows(features: np.ndarray, n_features: int) -> tuple[np.ndarray, bool]:
    """Unscaled features [N, T, F] or one workout [T, F] -> ([N, T, F], was it one workout);
    ValueError for another rank or a feature count other than the model's (every backend)."""
    arr = features[None] if features.ndim == 2 else features
    if arr.ndim != 3:
        raise ValueError(f"features must be [N, T, F] or [T, F], got shape {features.shape}")
    if arr.shape[-1] != n_features:
        raise ValueError(f"features have {arr.shape[-1]} columns, the model expects {n_features}")
    return arr, features.ndim == 2
