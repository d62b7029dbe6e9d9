"""The featurize stage: data/clean/workouts.parquet -> data/features/ (arrays + index).

Streams the clean parquet file batch by batch into .npy files written block by block
(`store.FeaturesWriter`), so peak memory is one batch, not the arrays. Two passes: the first
reads only the timestamp list lengths to size the arrays (in windows mode the number of rows per
workout varies), the second featurizes. Features are UNSCALED (split fits the scaler).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from hrpred import store
from hrpred.features.batch import (
    CLEAN_COLUMNS,
    REQUIRED_COLUMNS,
    featurize_batch,
    list_lengths,
    rows_per_workout,
)
from hrpred.features.config import FeaturizeConfig
from hrpred.features.registry import HR_FEATURES
from hrpred.progress import Bar

LENGTH_BATCH = 4096  # workouts per batch of the first (length-only) pass


def open_clean(path: Path) -> pq.ParquetFile:
    """data/clean/workouts.parquet, checked for the columns featurize needs."""
    if not path.is_file():
        raise store.StoreError(f"{path} not found: run `dvc repro clean` first")
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file: one message
        raise store.StoreError(f"cannot read {path} as parquet ({exc}); rerun clean") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in set(pf.schema_arrow.names)]
    if missing:
        raise store.StoreError(f"{path} lacks columns {missing}; rerun clean")
    return pf


def workout_lengths(pf: pq.ParquetFile) -> np.ndarray:
    """Steps of every workout (the timestamp list lengths), read without the other columns."""
    batches = pf.iter_batches(batch_size=LENGTH_BATCH, columns=["timestamp"])
    parts = [list_lengths(b.column("timestamp")) for b in batches]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def run_featurize(cfg: FeaturizeConfig, clean_path: Path, out_dir: Path) -> dict[str, Any]:
    """Rewrite `out_dir` (data/features) from the clean workouts; returns summary.json's dict."""
    names = cfg.names
    seq_len, mode = cfg.seq_len, cfg.long_workouts
    pf = open_clean(clean_path)
    have = set(pf.schema_arrow.names)
    columns = [c for c in CLEAN_COLUMNS if c in have]
    leaky = [n for n in names if n in HR_FEATURES]
    if leaky:
        print(
            f"featurize: WARNING features {leaky} are derived from the target HR", file=sys.stderr
        )

    lengths = workout_lengths(pf)  # pass 1: size the arrays
    n_rows = int(rows_per_workout(lengths, seq_len, mode).sum())
    if out_dir.exists():
        shutil.rmtree(out_dir)
    writer = store.FeaturesWriter(out_dir, n_rows, seq_len, names)
    in_rows = n_valid = 0
    mismatch: list[pd.DataFrame] = []
    bar = Bar("featurize", "workouts", total=len(lengths))
    for batch in pf.iter_batches(batch_size=cfg.batch_size, columns=columns):  # pass 2
        fb = featurize_batch(batch, names, seq_len, mode)
        arrays = {"features": fb.features, "target": fb.target, "mask": fb.mask}
        writer.write({**arrays, "elapsed": fb.elapsed}, fb.index)
        in_rows += int(fb.index["length"].sum()) if len(fb.index) else 0
        n_valid += int(fb.index["n_valid"].sum()) if "n_valid" in fb.index else 0
        if len(fb.index):
            mismatch.append(fb.index[["workout_id", "length_mismatch"]])
        bar.update(batch.num_rows)
    bar.close()
    per_workout = pd.concat(mismatch, ignore_index=True) if mismatch else None
    summary = {
        "workouts": len(lengths),
        "rows": n_rows,
        "seq_len": seq_len,
        "long_workouts": mode,
        "features": len(names),
        "leaky_features": leaky,
        "steps": {
            "total": int(lengths.sum()),
            "in_rows": in_rows,
            "valid": n_valid,
            "dropped_by_truncation": int(np.maximum(lengths - seq_len, 0).sum())
            if mode == "truncate"
            else 0,
        },
        "padding_fraction": float(1 - in_rows / (n_rows * seq_len)) if n_rows else 0.0,
        "length_mismatch_workouts": int(
            per_workout.drop_duplicates("workout_id")["length_mismatch"].sum()
        )
        if per_workout is not None
        else 0,
    }
    writer.close(summary)
    print(
        f"featurize: {len(lengths)} workouts -> {n_rows} rows x {seq_len} steps x {len(names)} "
        f"features, {n_valid} valid steps",
        file=sys.stderr,
    )
    return summary
