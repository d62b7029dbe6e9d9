"""Stage `train`: data/features + data/split -> models/model.pt, models/checkpoint.pt,
dvclive/train/, metrics/train.json.

Multi-GPU / multi-node: `torchrun --nproc_per_node=2 -m stages.train` (rank 0 writes outputs).
"""

from __future__ import annotations

import json
from pathlib import Path

from hrpred.params import ParamError, load_params
from hrpred.train.data import DataError, load_train_data
from hrpred.train.loop import TrainConfig, TrainingInterrupted, TrainPaths, fit

FEATURES_DIR = Path("data/features")
SPLIT_DIR = Path("data/split")
PATHS = TrainPaths(
    model=Path("models/model.pt"),
    checkpoint=Path("models/checkpoint.pt"),
    live_dir="dvclive/train",
)
METRICS_PATH = Path("metrics/train.json")
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


def main() -> None:
    try:
        cfg = TrainConfig.from_params(load_params("train"))
    except ParamError as exc:
        raise SystemExit(str(exc)) from None
    try:
        data = load_train_data(FEATURES_DIR, SPLIT_DIR)
    except DataError as exc:
        raise SystemExit(f"train: {exc}") from None
    try:
        summary = fit(cfg, data, PATHS)
    except TrainingInterrupted as exc:
        raise SystemExit(f"train: {exc}") from None
    except ParamError as exc:
        raise SystemExit(str(exc)) from None
    if summary["wrote_outputs"]:
        metrics = {k: summary[k] for k in METRIC_KEYS}
        METRICS_PATH.parent.mkdir(parents=True, exist_ok=True)
        METRICS_PATH.write_text(json.dumps(metrics, indent=2) + "\n")


if __name__ == "__main__":
    main()
