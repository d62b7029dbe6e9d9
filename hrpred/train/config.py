"""The `train` section of params.yaml as a typed config, the output paths, and derived seeds.

Every field is required: params.yaml is the only home of the values (`load_config(TrainConfig,
"train")`). The field ORDER is part of the output: `result_dict()` is stored in models/model.pt
(`train_params`) and hashed into the resume fingerprint.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from hrpred.params import ParamError
from hrpred.train.losses import LOSSES

DEVICES = ("auto", "cpu", "cuda")
SCHEDULES = ("plateau", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    seed: int  # init, shuffling and dropout (re-derived per epoch and rank)
    hidden: int  # LSTM hidden units
    layers: int  # stacked LSTM layers
    dropout: float  # between LSTM layers (fraction)
    bidirectional: bool  # reads the whole workout (not causal)
    lr: float  # AdamW learning rate
    weight_decay: float  # AdamW decoupled weight decay
    batch_size: int  # workouts per step (per process under torchrun)
    eval_batch_size: int  # workouts per validation batch (no effect on results)
    clip: float  # gradient-norm clip (0 = off)
    loss: Literal["mse", "mae", "huber"]  # masked, on the standardised target
    huber_delta: float  # BPM; huber loss only
    schedule: Literal["plateau", "cosine"]  # LR schedule (hrpred.train.schedule)
    warmup_epochs: float  # cosine: linear warmup length (epochs, may be fractional)
    patience: int  # early stopping on val MAE (epochs)
    lr_patience: int  # ReduceLROnPlateau patience (epochs, < patience)
    lr_factor: float  # LR multiplier on a plateau
    min_lr: float  # LR floor
    min_delta: float  # BPM; smaller val MAE gains do not reset early stopping
    max_epochs: int  # epochs
    max_batches: int  # cap on train batches per epoch (0 = all)
    device: Literal["auto", "cpu", "cuda"]
    amp: bool  # bf16 autocast on CUDA
    data_on_device: bool  # copy train/val arrays to the GPU once
    num_threads: int  # torch CPU threads (0 = torch default)
    val_threads: int  # threads validating at once (0 = 1; >= 2 + cosine: beside the next epoch)
    deterministic: bool  # deterministic kernels on CPU, cuDNN deterministic on GPU

    def __post_init__(self) -> None:
        def bad(msg: str) -> ParamError:
            return ParamError(f"params.yaml: train.{msg}")

        if self.loss not in LOSSES:
            raise bad(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.schedule not in SCHEDULES:
            raise bad(f"schedule must be plateau or cosine, got {self.schedule!r}")
        if not 0.0 <= self.warmup_epochs <= self.max_epochs:
            raise bad("warmup_epochs must be in [0, max_epochs]")
        if self.device not in DEVICES:
            raise bad(f"device must be auto, cpu or cuda, got {self.device!r}")
        for name in ("hidden", "layers", "batch_size", "eval_batch_size", "max_epochs", "patience"):
            if getattr(self, name) < 1:
                raise bad(f"{name} must be >= 1")
        if not 0 <= self.lr_patience < self.patience:
            raise bad(
                f"lr_patience ({self.lr_patience}) must be < patience ({self.patience}), "
                "otherwise early stopping fires before the LR can drop"
            )
        if not 0.0 < self.lr_factor < 1.0:
            raise bad("lr_factor must be in (0, 1)")
        if not 0.0 <= self.dropout < 1.0:
            raise bad("dropout must be in [0, 1)")
        if self.lr <= 0 or self.weight_decay < 0 or self.clip < 0 or self.huber_delta <= 0:
            raise bad("lr and huber_delta must be > 0; weight_decay and clip >= 0")
        if self.num_threads < 0 or self.val_threads < 0:
            raise bad("num_threads and val_threads must be >= 0 (0 = torch default / 1 part)")
        if self.max_batches < 0:
            raise bad("max_batches must be >= 0 (0 = the whole train set each epoch)")

    def result_dict(self) -> dict[str, Any]:
        """The config as stored in models/model.pt and hashed into the resume fingerprint."""
        return asdict(self)


@dataclass(frozen=True)
class TrainPaths:
    model: Path  # models/model.pt: best weights + everything inference needs
    checkpoint: Path  # models/checkpoint.pt: resume state (persisted by DVC)
    live_dir: Path | None  # dvclive folder; None = no logging


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed from the base seed and a tag (e.g. 'shuffle', epoch, rank)."""
    text = ":".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & (2**63 - 1)
