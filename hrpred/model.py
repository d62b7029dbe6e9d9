"""The HR sequence model, its checkpoint format (`models/model.pt`) and batch inference.

The model reads scaled features and predicts heart rate in BPM at every step. Internally the
head predicts the *standardised* target; `target_mean`/`target_std` are buffers, so a fresh
model already predicts the train mean HR (the reference spent ~5 epochs learning that bias).

The feature scaler is `hrpred.features.scaler` (one implementation for training, evaluation,
export and user-file prediction), so train/serve skew cannot creep in.

`HistoryHRModel` is the same sequence model conditioned on the runner's history: an encoder
pools the K most recent earlier workouts' summaries (`hrpred.personal.context`, raw units,
scaled here by `scale_context` with the checkpoint's `history.scaler`) into a vector that
either conditions the LSTM (`design: condition`: concatenated at every step and the initial
state) or sets personal parameters (`design: physio`: a level shift and an effort gain on the
population output). No history (cold start) is an all-False mask. Its checkpoint declares
`ckpt["history"]`; a checkpoint without that key is the population model.

Both models also predict a per-step *spread* (issue 14): a Laplace scale b (BPM) of the
residual, from a linear head on the DETACHED LSTM output, trained with the Laplace negative
log-likelihood of the detached residual (`hrpred.train.losses.spread_nll`). Nothing of the spread loss reaches the
central prediction's weights, and the head is created last (so the others' initialisation draws
are unchanged): the central curve is the same as without it. A Laplace scale, not a Gaussian:
the metric is MAE, and E|residual| = b. The band's width comes from split-conformal
calibration of |residual| / b on the validation split (`hrpred.uncertainty`).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from hrpred.features.scaler import apply_scaler, batch_of_rows, scaler_arrays
from hrpred.store import json_ready
from hrpred.threads import current_parts, part_bounds, part_pool, run_parts

CHECKPOINT_FORMAT = 2  # bump when the keys of models/model.pt change (2: spread head)
CONFIG_KEYS = ("input_size", "hidden", "layers", "dropout", "bidirectional")
HISTORY_KEYS = ("design", "k_max", "context_size", "enc_hidden", "embed")
DESIGNS = ("condition", "physio")
MIN_SPREAD = 1e-3  # floor of the Laplace scale (standardised units)
INIT_SPREAD = 0.5  # the spread head's initial scale (standardised units)


def _spread_head(width: int) -> nn.Linear:
    """Linear head -> raw spread; softplus(raw) + MIN_SPREAD starts at INIT_SPREAD."""
    head = nn.Linear(width, 1)
    nn.init.zeros_(head.weight)
    nn.init.constant_(head.bias, math.log(math.expm1(INIT_SPREAD - MIN_SPREAD)))
    return head


def spread_scale(raw: torch.Tensor) -> torch.Tensor:
    """Raw spread-head output -> Laplace scale b > 0 (standardised units)."""
    return F.softplus(raw) + MIN_SPREAD


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
        self.spread = _spread_head(int(hidden) * (2 if bidirectional else 1))  # last: see doc

    def forward(
        self, x: torch.Tensor, standardized: bool = False, with_spread: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """x: scaled features [B, T, F] -> HR [B, T] (BPM, or standardised units if asked);
        `with_spread`: (HR, spread) with the spread in BPM (raw head output if standardised)."""
        out, _ = self.lstm(x)
        z = self.head(out).squeeze(-1)
        return _outputs(self, z, out, standardized, with_spread)


def _outputs(
    model: nn.Module, z: torch.Tensor, out: torch.Tensor, standardized: bool, with_spread: bool
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Central HR (and the spread from the detached LSTM output) in the units asked for."""
    if not with_spread:
        return z if standardized else z * model.target_std + model.target_mean
    raw = model.spread(out.detach()).squeeze(-1)
    if standardized:
        return z, raw
    return z * model.target_std + model.target_mean, spread_scale(raw) * model.target_std


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


class HistoryEncoder(nn.Module):
    """[B, K, C] scaled history + [B, K] mask -> [B, embed]: an MLP per earlier workout,
    attention pooling over the valid ones, and the history fill (n / K) as an input."""

    def __init__(self, context_size: int, hidden: int, embed: int) -> None:
        super().__init__()
        self.entry = nn.Sequential(
            nn.Linear(context_size, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU()
        )
        self.score = nn.Linear(hidden, 1)
        self.out = nn.Sequential(nn.Linear(hidden + 1, hidden), nn.GELU(), nn.Linear(hidden, embed))

    def forward(self, ctx: torch.Tensor, cmask: torch.Tensor) -> torch.Tensor:
        m = cmask.unsqueeze(-1).to(ctx.dtype)
        h = self.entry(ctx * m) * m
        scores = self.score(h).masked_fill(~cmask.unsqueeze(-1), -1e4)
        pooled = (torch.softmax(scores, dim=1) * h).sum(dim=1)
        fill = m.sum(dim=1) / max(ctx.shape[1], 1)
        return self.out(torch.cat([pooled, fill], dim=-1))


class HistoryHRModel(nn.Module):
    """The LSTM of `HRLSTM`, conditioned on a history context; output in BPM, shape [B, T]."""

    def __init__(
        self,
        config: Mapping[str, Any],
        history: Mapping[str, Any],
        target_mean: float = 0.0,
        target_std: float = 1.0,
    ) -> None:
        super().__init__()
        self.config = {k: config[k] for k in CONFIG_KEYS}
        self.history_config = {k: history[k] for k in HISTORY_KEYS}
        design = str(history["design"])
        if design not in DESIGNS:
            raise ValueError(f"history design must be one of {DESIGNS}, got {design!r}")
        self.design = design
        hidden, layers, embed = int(config["hidden"]), int(config["layers"]), int(history["embed"])
        bidir = bool(config["bidirectional"])
        self.encoder = HistoryEncoder(
            int(history["context_size"]), int(history["enc_hidden"]), embed
        )
        extra = embed if design == "condition" else 0
        self.lstm = nn.LSTM(
            input_size=int(config["input_size"]) + extra,
            hidden_size=hidden,
            num_layers=layers,
            dropout=float(config["dropout"]) if layers > 1 else 0.0,
            batch_first=True,
            bidirectional=bidir,
        )
        self.head = nn.Linear(hidden * (2 if bidir else 1), 1)
        nn.init.zeros_(self.head.bias)
        n_states = layers * (2 if bidir else 1)
        self.state_shape = (n_states, hidden)
        if design == "condition":
            self.init_state = nn.Linear(embed, 2 * n_states * hidden)
        else:
            self.personal = nn.Linear(embed, 2)  # level shift, log effort gain
            nn.init.zeros_(self.personal.weight)
            nn.init.zeros_(self.personal.bias)
        self.register_buffer("target_mean", torch.tensor(float(target_mean)))
        self.register_buffer("target_std", torch.tensor(float(target_std)))
        self.spread = _spread_head(hidden * (2 if bidir else 1))  # last: see the module doc

    def forward(
        self,
        x: torch.Tensor,
        ctx: torch.Tensor | None = None,
        cmask: torch.Tensor | None = None,
        standardized: bool = False,
        with_spread: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """x: scaled features [B, T, F]; ctx [B, K, C] scaled (`scale_context`), cmask [B, K]
        bool; None = cold start -> HR [B, T] (and the spread, see `HRLSTM.forward`)."""
        b = x.shape[0]
        if ctx is None or cmask is None:
            k, c = int(self.history_config["k_max"]), int(self.history_config["context_size"])
            ctx = x.new_zeros((b, max(k, 1), c))
            cmask = torch.zeros((b, max(k, 1)), dtype=torch.bool, device=x.device)
        e = self.encoder(ctx.to(x.dtype), cmask.bool())
        if self.design == "condition":
            n, h = self.state_shape
            h0, c0 = torch.tanh(self.init_state(e)).view(b, 2, n, h).permute(1, 2, 0, 3)
            xe = torch.cat([x, e.unsqueeze(1).expand(-1, x.shape[1], -1)], dim=-1)
            out, _ = self.lstm(xe, (h0.contiguous(), c0.contiguous()))
            z = self.head(out).squeeze(-1)
        else:
            out, _ = self.lstm(x)
            shift, log_gain = self.personal(e).unbind(-1)
            z = shift.unsqueeze(1) + self.head(out).squeeze(-1) * torch.exp(log_gain).unsqueeze(1)
        return _outputs(self, z, out, standardized, with_spread)


def scale_context(values: np.ndarray, mask: np.ndarray, history: Mapping[str, Any]) -> np.ndarray:
    """Raw context [N, K, C] -> the model's input scale (checkpoint `history.scaler`), 0 where
    `mask` is False (so padding never carries a value)."""
    mean = np.asarray(history["scaler"]["mean"], dtype=np.float32)
    std = np.asarray(history["scaler"]["std"], dtype=np.float32)
    scaled = (np.asarray(values, dtype=np.float32) - mean) / std
    return np.where(np.asarray(mask, bool)[..., None], scaled, 0.0).astype(np.float32)


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
    model: HRLSTM | HistoryHRModel,
    *,
    state_dict: Mapping[str, torch.Tensor] | None = None,
    features: Sequence[str],
    scaler: Mapping[str, Mapping[str, float]],
    seq_len: int,
    best_epoch: int,
    val: Mapping[str, float],
    train_params: Mapping[str, Any],
    history: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The `models/model.pt` dict: only tensors and plain Python types (weights_only-safe).

    A `HistoryHRModel` adds `history`: its architecture (HISTORY_KEYS), `context_features`,
    `summary_features`, the context `scaler` ({mean, std} lists) and `personal_params`.
    """
    ckpt = {
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
    if isinstance(model, HistoryHRModel):
        if history is None:
            raise ValueError("a history model's checkpoint needs its `history` metadata")
        ckpt["history"] = json_ready({**dict(history), **model.history_config})
    return ckpt


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
) -> tuple[HRLSTM | HistoryHRModel, dict[str, Any]]:
    """Load `models/model.pt` (weights_only) and rebuild the model in eval mode on `device`."""
    ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "config" not in ckpt:
        raise ValueError(f"{path} is not an hrpred model checkpoint")
    model = model_from_checkpoint(ckpt).to(device)
    return model, ckpt


def model_from_checkpoint(ckpt: Mapping[str, Any]) -> HRLSTM | HistoryHRModel:
    """Rebuild the eval-mode model from an in-memory checkpoint dict."""
    mean, std = ckpt.get("target_mean", 0.0), ckpt.get("target_std", 1.0)
    model: HRLSTM | HistoryHRModel
    if "history" in ckpt:
        model = HistoryHRModel(ckpt["config"], ckpt["history"], mean, std)
    else:
        model = build_model(ckpt["config"], mean, std)
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model


# --- inference -------------------------------------------------------------------------------


def supports_history(ckpt: Mapping[str, Any]) -> bool:
    """True when the checkpoint's model reads a history context (`ckpt["history"]`)."""
    return "history" in ckpt


def predict(
    model: HRLSTM | HistoryHRModel,
    ckpt: Mapping[str, Any],
    features_unscaled: np.ndarray,
    batch_size: int = 256,
    context: tuple[np.ndarray, np.ndarray] | None = None,
    with_spread: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """HR in BPM, float32 [N, T], for unscaled features [N, T, F] (or [T, F] -> [T]);
    `with_spread`: (HR, spread) with the per-step Laplace scale in BPM (same shape).

    Applies the checkpoint's scaler; runs on the model's device, in batches, so a memmapped
    array is read a batch at a time. `context` = (values [N, K, C] raw
    `hrpred.personal.context.CONTEXT_FEATURES`, mask [N, K]) or, for a single workout,
    ([K, C], [K]); None = cold start. A checkpoint without history support ignores it.
    """
    arr, single = batch_of_rows(features_unscaled, len(ckpt["features"]))
    device = next(model.parameters()).device
    mean, std = _scaler_tensors(ckpt, device)
    ctx = cmask = None
    if context is not None and supports_history(ckpt):
        ctx, cmask = (np.asarray(c) for c in context)
        if single:
            ctx, cmask = ctx[None], cmask[None]
        meta = ckpt["history"]
        if ctx.shape[0] != arr.shape[0] or ctx.shape[-1] != len(meta["context_features"]):
            raise ValueError(
                f"context has shape {ctx.shape}; expected [{arr.shape[0]}, K, "
                f"{len(meta['context_features'])}]"
            )
        ctx = scale_context(ctx, cmask, meta)
    out = np.empty(arr.shape[:2], dtype=np.float32)
    spread = np.empty(arr.shape[:2], dtype=np.float32) if with_spread else None

    def run(lo: int, hi: int) -> None:  # rows [lo, hi): one forward pass
        with torch.inference_mode():  # thread-local: entered in every worker thread
            chunk = np.ascontiguousarray(arr[lo:hi], dtype=np.float32)
            if not chunk.flags.writeable:  # a read-only memmap: torch wants its own buffer
                chunk = chunk.copy()
            x = apply_scaler(torch.from_numpy(chunk).to(device), mean, std)
            if ctx is None or cmask is None:
                y = model(x, with_spread=with_spread)
            else:
                c = torch.from_numpy(ctx[lo:hi]).to(device)
                cm = torch.from_numpy(np.asarray(cmask[lo:hi], bool))
                y = model(x, c, cm.to(device), with_spread=with_spread)
            if spread is not None:
                y, b = y
                spread[lo:hi] = b.float().cpu().numpy()
            out[lo:hi] = y.float().cpu().numpy()

    was_training = model.training
    model.eval()
    step = max(1, int(batch_size))
    parts = current_parts() if device.type == "cpu" else 1
    with part_pool(parts) as pool:
        for start in range(0, arr.shape[0], step):
            run_parts(run, part_bounds(start, min(start + step, arr.shape[0]), parts), pool)
    model.train(was_training)
    if spread is not None:
        return (out[0], spread[0]) if single else (out, spread)
    return out[0] if single else out
