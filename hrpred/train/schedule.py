"""The learning-rate schedule (`train.schedule`).

- `plateau`: ReduceLROnPlateau on val MAE (x lr_factor after lr_patience epochs without a gain),
  stepped once per epoch.
- `cosine`: a linear warmup over `warmup_epochs`, then a cosine decay from `lr` to `min_lr` that
  ends with the last batch of epoch `max_epochs`, stepped after every optimizer step. The run
  ends converged by design (the last epochs take small steps); early stopping still applies.

Both are plain torch schedulers, so the state saved in models/checkpoint.pt resumes exactly.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from hrpred.train.config import TrainConfig


def cosine_factor(step: int, total: int, warmup: int, floor: float) -> float:
    """LR multiplier after `step` optimizer steps of `total`: (step + 1) / warmup during the
    warmup, then floor + (1 - floor) * (1 + cos(pi * progress)) / 2 (1 -> floor at the end)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class Schedule:
    """`train.schedule` over an optimizer; `batches_per_epoch` is this rank's batch count."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, cfg: TrainConfig, batches_per_epoch: int
    ) -> None:
        self.kind = cfg.schedule
        self.scheduler: Any
        if self.kind == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer,
                mode="min",
                factor=cfg.lr_factor,
                patience=cfg.lr_patience,
                min_lr=cfg.min_lr,
            )
            return
        total = cfg.max_epochs * batches_per_epoch
        warmup = min(total, max(0, round(cfg.warmup_epochs * batches_per_epoch)))
        floor = min(1.0, cfg.min_lr / cfg.lr)
        self.factor = lambda step: cosine_factor(step, total, warmup, floor)
        self.batches_per_epoch = batches_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self.factor)

    def epoch_lr(self, epoch: int) -> float:
        """The LR of the first batch of `epoch` (0-based), also when resuming mid-epoch."""
        group = self.scheduler.optimizer.param_groups[0]
        if self.kind == "plateau":
            return float(group["lr"])  # constant within an epoch
        return float(self.scheduler.base_lrs[0] * self.factor(epoch * self.batches_per_epoch))

    def after_batch(self) -> None:
        if self.kind == "cosine":
            self.scheduler.step()

    def after_epoch(self, val_mae: float) -> None:
        if self.kind == "plateau":
            self.scheduler.step(val_mae)

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)
