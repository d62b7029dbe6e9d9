"""The HR sequence model, its checkpoint format (`models/model.pt`) and batch inference.

The model reads scaled features and predicts heart rate in BPM at every step. Internally the
head predicts the *standardised* target; `target_mean`/`target_std` are buffers, so a fresh
model already predicts the train mean HR (the reference spent ~5 epochs learning that bias).

The feature scaler is `hrpred.features.scaler` (one implementation for training, evaluation,
export and user-file prediction), so train/serve skew cannot creep in.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hrpred.features.scaler import apply_scaler, scaler_arrays
from hrpred.store import json_ready

CHECKPOINT_FORMAT = 1  # bump when the keys of models/model.pt change
CONFIG_KEYS = ("input_size", "hidden", "layers", "dropout", "bidirectional")


class HRLSTM(nn.Module):
    """LSTM over the time axis + a linear head per step; output in BPM, shape [B, T]."""

    def __init__(
        self,
        input_size: int,
        hidden: int = 128,
        layers: int = 2,
        dropout: float = 0.3,
        bidirectional: bool = False,
        target_mean: float = 0.0,
        target_std: float = 1.0,
    ) -> None:
        super().__init__()
        self.config = {
            "input_size": int(input_size),
            "hidden": int(hidden),
            "layers": int(layers),
            "dropout": float(dropout),
            "bidirectional": bool(bidirectional),
        }
        self.lstm = nn.LSTM(
            input_size=int(input_size),
            hidden_size=int(hidden),
            num_layers=int(layers),
            # torch warns (and ignores it) when dropout is set on a single layer
            dropout=float(dropout) if int(layers) > 1 else 0.0,
            batch_first=True,
            bidirectional=bool(bidirectional),
        )
        self.head = nn.Linear(int(hidden) * (2 if bidirectional else 1), 1)
        # Zero bias on the standardised scale = the train HR mean in BPM at initialisation.
        nn.init.zeros_(self.head.bias)
        self.register_buffer("target_mean", torch.tensor(float(target_mean)))
        self.register_buffer("target_std", torch.tensor(float(target_std)))

    def forward(self, x: torch.Tensor, standardized: bool = False) -> torch.Tensor:
        """x: scaled features [B, T, F] -> HR [B, T] (BPM, or standardised units if asked)."""
        out, _ = self.lstm(x)
        z = self.head(out).squeeze(-1)
        if standardized:
            return z
        return z * self.target_std + self.target_mean


def build_model(
    config: Mapping[str, Any], target_mean: float = 0.0, target_std: float = 1.0
) -> HRLSTM:
    """Rebuild an `HRLSTM` from the `config` dict stored in a checkpoint."""
    missing = [k for k in CONFIG_KEYS if k not in config]
    if missing:
        raise ValueError(f"model config lacks {missing}")
    return HRLSTM(
        **{k: config[k] for k in CONFIG_KEYS}, target_mean=target_mean, target_std=target_std
    )


def count_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


# --- feature scaling (hrpred.features.scaler) ----------------------------------------------


def _scaler_tensors(ckpt: Mapping[str, Any], device: torch.device) -> tuple[torch.Tensor, ...]:
    mean, std = scaler_arrays(ckpt["features"], ckpt["scaler"])
    return torch.from_numpy(mean).to(device), torch.from_numpy(std).to(device)


# --- checkpoint -------------------------------------------------------------------------------


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached CPU copies (own storage each, so saved bytes do not depend on the device)."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def make_checkpoint(
    model: HRLSTM,
    *,
    state_dict: Mapping[str, torch.Tensor] | None = None,
    features: Sequence[str],
    scaler: Mapping[str, Mapping[str, float]],
    seq_len: int,
    best_epoch: int,
    val: Mapping[str, float],
    train_params: Mapping[str, Any],
) -> dict[str, Any]:
    """The `models/model.pt` dict: only tensors and plain Python types (weights_only-safe)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "state_dict": dict(state_dict) if state_dict is not None else cpu_state_dict(model),
        "config": dict(model.config),
        "features": [str(n) for n in features],
        "scaler": {
            str(k): {"mean": float(v["mean"]), "std": float(v["std"])} for k, v in scaler.items()
        },
        "target_mean": float(model.target_mean),
        "target_std": float(model.target_std),
        "seq_len": int(seq_len),
        "best_epoch": int(best_epoch),
        "val": {str(k): float(v) for k, v in val.items()},
        "n_params": count_parameters(model),
        "train_params": json_ready(dict(train_params)),
    }


def save_torch(obj: Any, path: str | Path) -> None:
    """torch.save with stable bytes and an atomic replace.

    Saving through a BytesIO fixes the archive's internal folder name (torch derives it from
    the file name otherwise), so the same object always gives the same bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(obj, buf)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(ckpt: Mapping[str, Any], path: str | Path) -> None:
    save_torch(dict(ckpt), path)


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[HRLSTM, dict[str, Any]]:
    """Load `models/model.pt` (weights_only) and rebuild the model in eval mode on `device`."""
    ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "config" not in ckpt:
        raise ValueError(f"{path} is not an hrpred model checkpoint")
    model = model_from_checkpoint(ckpt).to(device)
    return model, ckpt


def model_from_checkpoint(ckpt: Mapping[str, Any]) -> HRLSTM:
    """Rebuild the eval-mode model from an in-memory checkpoint dict."""
    model = build_model(ckpt["config"], ckpt.get("target_mean", 0.0), ckpt.get("target_std", 1.0))
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model


# --- inference -------------------------------------------------------------------------------


def predict(
    model: HRLSTM,
    ckpt: Mapping[str, Any],
    features_unscaled: np.ndarray,
    batch_size: int = 256,
) -> np.ndarray:
    """HR in BPM, float32 [N, T], for unscaled features [N, T, F] (or [T, F] -> [T]).

    Applies the checkpoint's scaler; runs on the model's device, in batches, so a memmapped
    array is read a batch at a time.
    """
    arr = features_unscaled
    single = arr.ndim == 2
    if single:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"features must be [N, T, F] or [T, F], got shape {arr.shape}")
    n_feat = len(ckpt["features"])
    if arr.shape[-1] != n_feat:
        raise ValueError(f"features have {arr.shape[-1]} columns, the model expects {n_feat}")
    device = next(model.parameters()).device
    mean, std = _scaler_tensors(ckpt, device)
    out = np.empty(arr.shape[:2], dtype=np.float32)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in range(0, arr.shape[0], max(1, int(batch_size))):
            chunk = np.ascontiguousarray(arr[start : start + batch_size], dtype=np.float32)
            x = apply_scaler(torch.from_numpy(chunk).to(device), mean, std)
            out[start : start + len(chunk)] = model(x).float().cpu().numpy()
    model.train(was_training)
    return out[0] if single else out
