"""The split stage: data/features/ -> data/split/ (assignment + scaler), metrics/split.json.

Assigns every feature row to train/val/test (or `dropped`, chronological only) and fits the
feature scaler on train rows' valid steps, reading features.npy block by block.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hrpred import store
from hrpred.features.registry import BINARY_FEATURES
from hrpred.split.assign import SPLITS, assign, fit_scaler, split_counts
from hrpred.split.config import SplitConfig


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
    }
    store.write_json(metrics_path, metrics)
    w = counts["workouts"]
    print(
        f"split ({cfg.method}): workouts train {w['train']} / val {w['val']} / test {w['test']}"
        f" / dropped {w['dropped']}",
        file=sys.stderr,
    )
    return metrics
