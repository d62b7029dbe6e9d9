"""An epoch's end as the training loop records it: its history record (dvclive, checkpoint),
its log line, and the state kept while its validation runs beside the next epoch's training
(`hrpred.train.loop.Trainer`: on the CPU the second core validates epoch k while epoch k + 1
trains; epoch k's bookkeeping follows when its val metrics are in)."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import torch

from hrpred.train.config import TrainConfig


class StoppedEarly(Exception):
    """The previous epoch's validation, settled inside this epoch, exhausted the patience."""


@dataclass
class EpochEnd:
    """A trained epoch waiting for its val metrics. Validated beside the next epoch's training,
    it keeps a copy of the weights (validated, and kept if best) and the resume state at that
    moment (`model`, `optimizer`, `scheduler`), and the validation's `val` future."""

    epoch: int  # 0-based
    train: dict[str, float]  # train metrics
    lr: float
    trained: float  # workouts trained this epoch
    train_s: float
    model: torch.nn.Module | None = None
    optimizer: dict[str, Any] | None = None  # state dicts (copies)
    scheduler: dict[str, Any] | None = None
    val: Future[tuple[dict[str, float], float]] | None = None  # (val metrics, seconds)

    @property
    def beside(self) -> bool:
        return self.model is not None


def validates_beside(cfg: TrainConfig, device: torch.device, world_size: int) -> bool:
    """Validate each epoch on the second core while the next one trains: on the CPU, in one
    process, with `val_threads` >= 2 and the cosine schedule (its learning rates do not
    depend on val MAE; plateau's do). The same weights and metrics as validating in turn."""
    return (
        device.type == "cpu"
        and world_size == 1
        and cfg.val_threads >= 2
        and cfg.schedule == "cosine"
    )


def epoch_record(
    end: EpochEnd, va: dict[str, float], val_s: float, wait_s: float
) -> dict[str, Any]:
    """The epoch's history record. Validated beside the next epoch, its time is the
    training's plus the wait for the validation to finish (`val_time_s` is the validation's
    own)."""
    tr = end.train
    return {
        "epoch": end.epoch + 1,
        "train_loss": tr["loss"],
        "train_mae": tr["mae"],
        "train_rmse": tr["rmse"],
        "val_loss": va["loss"],
        "val_mae": va["mae"],
        "val_rmse": va["rmse"],
        "lr": end.lr,
        "train_time_s": end.train_s,
        "val_time_s": val_s,
        "val_beside": end.beside,
        "epoch_time_s": end.train_s + (wait_s if end.beside else val_s),
        "throughput_workouts_per_s": end.trained / max(end.train_s, 1e-9),
    }


def epoch_line(record: dict[str, Any], beside: bool) -> str:
    """The epoch's summary line on the log."""
    return (
        f"epoch {record['epoch']}: train MAE {record['train_mae']:.2f}  "
        f"val MAE {record['val_mae']:.2f}  val RMSE {record['val_rmse']:.2f} BPM  "
        f"lr {record['lr']:.2e}  {record['epoch_time_s']:.1f}s"
        + ("  (validated beside the next epoch)" if beside else "")
    )


def log_epoch(live: Any, record: dict[str, Any]) -> None:
    """The epoch's record as one dvclive step (dvclive/train)."""
    for key in ("loss", "mae", "rmse"):
        live.log_metric(f"train/{key}", record[f"train_{key}"])
        live.log_metric(f"val/{key}", record[f"val_{key}"])
    live.log_metric("lr", record["lr"])
    live.log_metric("epoch_time_s", record["epoch_time_s"])
    live.log_metric("throughput_workouts_per_s", record["throughput_workouts_per_s"])
    live.next_step()
