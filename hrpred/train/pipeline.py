"""The train stage: data/features + data/split -> models/model.pt, models/checkpoint.pt,
dvclive/train/, metrics/train.json (written by rank 0 only under torchrun)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hrpred import store
from hrpred.personal.config import LearnedConfig
from hrpred.train.config import TrainConfig, TrainPaths
from hrpred.train.data import TrainData, load_train_data
from hrpred.train.history_data import HistoryData, load_history_data
from hrpred.train.loop import fit

# metrics/train.json keys copied from fit()'s summary (history lives in dvclive)
METRIC_KEYS = (
    "best_epoch",
    "best_val_mae",
    "best_val_rmse",
    "epochs_run",
    "stopped_early",
    "resumed_from_epoch",
    "final_lr",
    "n_params",
    "n_train",
    "n_val",
    "target_mean",
    "target_std",
    "device",
    "world_size",
    "mean_epoch_time_s",
    "mean_throughput_workouts_per_s",
    "wall_time_s",
)


def load_inputs(
    features_dir: Path, split_dir: Path, learned: LearnedConfig
) -> tuple[TrainData, HistoryData | None]:
    """The train and val rows, and with `learned.model: encoder` their history contexts
    (data/split/history.parquet; None for the population LSTM)."""
    data = load_train_data(features_dir, split_dir)
    if learned.model != "encoder":
        return data, None
    return data, load_history_data(data, features_dir, split_dir, learned)


def run_train(
    cfg: TrainConfig,
    features_dir: Path,
    split_dir: Path,
    paths: TrainPaths,
    metrics_path: Path,
    learned: LearnedConfig,
) -> dict[str, Any]:
    """Train on the split's train rows (early stopping on val) and write the outputs.

    `learned.model: encoder` trains the history-conditioned model (contexts from
    data/split/history.parquet); `none` the population LSTM, exactly as before.
    """
    data, history = load_inputs(features_dir, split_dir, learned)
    summary = fit(cfg, data, paths, history=history)
    if summary["wrote_outputs"]:
        store.write_json(metrics_path, {k: summary[k] for k in METRIC_KEYS})
    return summary
