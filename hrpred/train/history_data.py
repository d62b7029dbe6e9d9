"""History contexts for training the history-conditioned model (`personal.learned`).

Each train/val row's workout gets the summaries of its K most recent earlier workouts
(data/split/history.parquet, `hrpred.personal.context`). Honesty: a row's context lists only
workouts that started strictly before it; train rows may only read *train* workouts as
history (so no val/test summary enters a training batch, whatever the split method), val rows
train and val workouts. The context scaler is fitted on the train contexts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hrpred import store
from hrpred.model import scale_context
from hrpred.personal.config import LearnedConfig
from hrpred.personal.context import CONTEXT_FEATURES, Context, build_context
from hrpred.personal.summaries import SUMMARY_FEATURES, compute_summaries
from hrpred.train.data import DataError, TrainData

MIN_STD = 1e-3


@dataclass(frozen=True)
class HistoryData:
    """Scaled contexts aligned with the train and val rows, and the checkpoint metadata."""

    train: Context  # values scaled (model input), mask
    val: Context
    meta: dict[str, Any]  # ckpt["history"] (less the architecture keys the model adds)
    fingerprint: str  # sha256 of history.parquet: part of the resume fingerprint


def context_scaler(ctx: Context) -> dict[str, list[float]]:
    """Mean/std of each context column over the real (masked-in) entries."""
    v = ctx.values[ctx.mask].astype(np.float64)
    if len(v) == 0:
        return {"mean": [0.0] * ctx.values.shape[-1], "std": [1.0] * ctx.values.shape[-1]}
    std = v.std(axis=0)
    return {
        "mean": [float(x) for x in v.mean(axis=0)],
        "std": [float(x) if x > MIN_STD else 1.0 for x in std],
    }


def load_history_data(
    data: TrainData, features_dir: Path, split_dir: Path, cfg: LearnedConfig
) -> HistoryData:
    """Contexts of the train and val rows (see the module doc), summaries in one pass."""
    history = store.open_history(split_dir)
    summaries = compute_summaries(features_dir)
    ids = data.dataset.data.index["workout_id"].to_numpy(dtype=np.int64)
    train_ids, val_ids = ids[data.train_rows], ids[data.val_rows]
    train = build_context(train_ids, history, summaries, cfg.k_max, allowed=np.unique(train_ids))
    seen = np.unique(np.concatenate([train_ids, val_ids]))
    val = build_context(val_ids, history, summaries, cfg.k_max, allowed=seen)
    if not train.mask.any():
        raise DataError(
            "no train workout has a usable history; set personal.learned.model: none or "
            "check split.max_history and the index's start_time"
        )
    meta = {
        "context_features": list(CONTEXT_FEATURES),
        "summary_features": list(SUMMARY_FEATURES),
        "scaler": context_scaler(train),
        "personal_params": cfg.result_dict(),
    }
    return HistoryData(
        train=Context(scale_context(train.values, train.mask, meta), train.mask),
        val=Context(scale_context(val.values, val.mask, meta), val.mask),
        meta=meta,
        fingerprint=store.fingerprint([Path(split_dir) / "history.parquet"]),
    )
