"""Resume state of a training run (models/checkpoint.pt): what is saved, when a saved state may
be continued, the best-epoch bookkeeping, and the dvclive history that goes with it.

An epoch boundary is a complete resume point (randomness is re-seeded per epoch); a mid-epoch
stop also saves the RNG state, the batch position and the partial error sums. A checkpoint is
continued only when it is unfinished and its fingerprint (train params that change the weights,
the input data's sha256, the world size) matches the current run.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hrpred.model import cpu_state_dict, save_torch
from hrpred.train.config import TrainConfig

CHECKPOINT_VERSION = 1


def run_fingerprint(
    cfg: TrainConfig,
    data_fingerprint: str,
    world_size: int,
    extra: dict[str, Any] | None = None,
) -> str:
    """Identifies what a checkpoint's weights depend on (params, data, world size, and
    `extra`: the history model's params and history table, absent for the population model)."""
    parts: dict[str, Any] = {
        "train": cfg.result_dict(),
        "data": data_fingerprint,
        "world_size": world_size,
    }
    if extra is not None:
        parts["personal"] = extra
    blob = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def state_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 of a CPU state dict's tensors (compares weights across ranks)."""
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode() + b"\0")
        h.update(state[key].numpy().tobytes())
    return h.hexdigest()


@dataclass
class EarlyStop:
    """Best val MAE so far, its weights, and the epochs since it improved."""

    best_mae: float = math.inf
    best_rmse: float = math.inf
    best_loss: float = math.inf
    best_epoch: int = 0  # 1-based; 0 = none yet
    bad_epochs: int = 0
    best_state: dict[str, torch.Tensor] | None = None

    def update(
        self, val: dict[str, float], epoch: int, model: torch.nn.Module, cfg: TrainConfig
    ) -> bool:
        """Record epoch `epoch` (1-based); True when patience is exhausted."""
        if val["mae"] < self.best_mae - cfg.min_delta:
            self.best_mae, self.best_rmse, self.best_loss = val["mae"], val["rmse"], val["loss"]
            self.best_epoch = epoch
            self.bad_epochs = 0
            self.best_state = cpu_state_dict(model)
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= cfg.patience

    def state(self) -> dict[str, Any]:
        return {
            "best_mae": self.best_mae,
            "best_rmse": self.best_rmse,
            "best_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "best_state": self.best_state,
        }

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> EarlyStop:
        return cls(**s)


def save_resume_state(
    path: Path,
    *,
    fingerprint: str,
    finished: bool,
    next_epoch: int,
    next_batch: int,
    model: dict[str, torch.Tensor],
    optimizer: dict[str, Any],
    scheduler: dict[str, Any],
    early: EarlyStop,
    history: list[dict[str, Any]],
    partial_sums: torch.Tensor | None,
    device: torch.device,
) -> None:
    """Write the resume state: `model` as `cpu_state_dict` gives it, the optimizer's and the
    schedule's state dicts; the RNG state is kept only for a mid-epoch stop."""
    rng: dict[str, torch.Tensor] = {}
    if next_batch > 0:
        rng["cpu"] = torch.get_rng_state()
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(device)
    state = {
        "version": CHECKPOINT_VERSION,
        "fingerprint": fingerprint,
        "finished": bool(finished),
        "next_epoch": int(next_epoch),
        "next_batch": int(next_batch),
        "model": model,
        "optimizer": optimizer,
        "scheduler": scheduler,
        "early_stopping": early.state(),
        "history": history,
        "partial_sums": partial_sums.detach().cpu() if partial_sums is not None else None,
        "rng": rng,
    }
    save_torch(state, path)


def load_resumable(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """The saved state at `path` when it may be continued, else None (with a note why)."""
    if not path.is_file():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a torn file must not block training
        print(f"train: ignoring unreadable {path} ({exc})", file=sys.stderr)
        return None
    if not isinstance(ckpt, dict) or ckpt.get("version") != CHECKPOINT_VERSION:
        return None
    if ckpt.get("finished", True):
        return None  # a completed run is retrained from scratch, never continued
    if ckpt.get("fingerprint") != fingerprint:
        print("train: checkpoint is for other params/data; starting fresh", file=sys.stderr)
        return None
    return ckpt


def truncate_live_history(live_dir: Path, from_step: int) -> None:
    """Drop dvclive history rows at or after `from_step` (logged after the last checkpoint)."""
    folder = Path(live_dir) / "plots" / "metrics"
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*.tsv")):
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f, delimiter="\t"))
        if not rows or "step" not in rows[0]:
            continue
        col = rows[0].index("step")
        kept = [rows[0]] + [r for r in rows[1:] if r and int(r[col]) < from_step]
        with open(path, "w", newline="", encoding="utf-8") as f:
            csv.writer(f, delimiter="\t", lineterminator=os.linesep).writerows(kept)
