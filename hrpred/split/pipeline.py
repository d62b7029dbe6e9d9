"""The split stage: data/features/ -> data/split/ (assignment, scaler, history), metrics/split.json.

Assigns every feature row to train/val/test (or `dropped`, chronological only) and fits the
feature scaler on train rows' valid steps, reading features.npy block by block. Writes each workout's history (its user's earlier
workouts, `hrpred.split.history`, from user_id + start_time only) to history.parquet.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hrpred import store
from hrpred.features.registry import BINARY_FEATURES
from hrpred.split.assign import SPLITS, assign, fit_scaler, split_counts
from hrpred.split.config import SplitConfig
from hrpred.split.history import bucket_counts, build_history, history_sizes


def run_split(
    cfg: SplitConfig, features_dir: Path, split_dir: Path, metrics_path: Path
) -> dict[str, Any]:
    """Write `split_dir` and `metrics_path` from data/features; returns the metrics dict."""
    data = store.open_features(features_dir)
    table = assign(data.index, cfg)
    is_train = (table["split"] == "train").to_numpy()
    blocks = (
        (f, m)
        for (_, f), (_, m) in zip(
            store.iter_row_blocks(features_dir / "features.npy", cfg.scaler_block_rows),
            store.iter_row_blocks(features_dir / "mask.npy", cfg.scaler_block_rows),
            strict=True,
        )
    )
    scaler, degenerate = fit_scaler(blocks, is_train, data.names, BINARY_FEATURES)
    store.write_split(split_dir, table, scaler)
    history = build_history(table, data.index, cfg.max_history)
    store.write_history(split_dir, history)
    counts = split_counts(table, data.index)
    total_w = max(counts["workouts"]["total"], 1)
    metrics = {
        "method": cfg.method,
        "seed": cfg.seed,
        "stratify": cfg.stratify if cfg.method == "user" else None,
        **counts,
        "workout_fraction": {s: counts["workouts"][s] / total_w for s in SPLITS},
        "scaler": {
            "scaled_features": len(scaler),
            "unscaled_features": [n for n in data.names if n not in scaler],
            "degenerate": degenerate,
        },
        "history": history_stats(table, history, cfg.max_history),
    }
    store.write_json(metrics_path, metrics)
    w = counts["workouts"]
    print(
        f"split ({cfg.method}): workouts train {w['train']} / val {w['val']} / test {w['test']}"
        f" / dropped {w['dropped']}",
        file=sys.stderr,
    )
    return metrics


def history_stats(table: pd.DataFrame, history: pd.DataFrame, max_history: int) -> dict[str, Any]:
    """metrics/split.json `history`: per split, workouts per history-size bucket."""
    out: dict[str, Any] = {"max_history": max_history, "pairs": len(history)}
    w = table.drop_duplicates("workout_id")
    for s in SPLITS:
        ids = w.loc[w["split"] == s, "workout_id"].to_numpy(dtype=np.int64)
        sizes = history_sizes(history, ids)
        out[s] = {
            "workouts": bucket_counts(sizes),
            "mean_size": float(sizes.mean()) if len(sizes) else 0.0,
        }
    return out
