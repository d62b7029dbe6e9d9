"""featurize: data/clean/workouts.parquet -> data/features/ (on-disk arrays + index).

Streams the clean parquet file batch by batch into .npy files written block by block, so
peak memory is one batch, not the arrays. Features are UNSCALED (split fits the scaler).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from tqdm import tqdm

from hrpred.features.batch import (
    CLEAN_COLUMNS,
    REQUIRED_COLUMNS,
    featurize_batch,
    list_lengths,
    rows_per_workout,
)
from hrpred.features.registry import HR_FEATURES, expand_names
from hrpred.features.rows import LONG_MODES, NpyRowWriter
from hrpred.params import ParamError, load_params

CLEAN = Path("data/clean/workouts.parquet")
OUT = Path("data/features")


def main() -> None:
    try:
        p = load_params("featurize")
        names = expand_names([str(n) for n in p.list("features")])
        seq_len = p.int("seq_len")
        mode = p.str("long_workouts")
        batch_size = p.int("batch_size", 256)
    except (ParamError, ValueError) as e:
        raise SystemExit(f"featurize: {e}") from None
    if mode not in LONG_MODES:
        raise SystemExit(f"featurize: featurize.long_workouts must be one of {LONG_MODES}")
    if seq_len < 1 or batch_size < 1:
        raise SystemExit("featurize: featurize.seq_len and featurize.batch_size must be >= 1")
    if not CLEAN.exists():
        raise SystemExit(f"featurize: {CLEAN} not found: run `dvc repro clean` first")
    try:
        pf = pq.ParquetFile(CLEAN)
    except Exception as e:  # any unreadable file gets the same one-line message
        raise SystemExit(f"featurize: cannot read {CLEAN} as parquet ({e}); rerun clean") from None
    have = set(pf.schema_arrow.names)
    missing = [c for c in REQUIRED_COLUMNS if c not in have]
    if missing:
        raise SystemExit(f"featurize: {CLEAN} lacks columns {missing}; rerun clean")
    columns = [c for c in CLEAN_COLUMNS if c in have]
    leaky = [n for n in names if n in HR_FEATURES]
    if leaky:
        print(
            f"featurize: WARNING features {leaky} are derived from the target HR", file=sys.stderr
        )

    # Pass 1: list lengths only, to size the arrays (windows mode makes rows per workout vary).
    lengths = np.concatenate(
        [list_lengths(b.column("timestamp")) for b in pf.iter_batches(batch_size=4096,
                                                                       columns=["timestamp"])]
        or [np.zeros(0, dtype=np.int64)]
    )  # fmt: skip
    n_rows = int(rows_per_workout(lengths, seq_len, mode).sum())
    n_feat = len(names)

    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    writers = {
        "features": NpyRowWriter(OUT / "features.npy", (n_rows, seq_len, n_feat), np.float32),
        "target": NpyRowWriter(OUT / "target.npy", (n_rows, seq_len), np.float32),
        "mask": NpyRowWriter(OUT / "mask.npy", (n_rows, seq_len), np.bool_),
        "elapsed": NpyRowWriter(OUT / "elapsed.npy", (n_rows, seq_len), np.float32),
    }
    index: list[pd.DataFrame] = []
    bar = tqdm(total=len(lengths), desc="featurize", unit="workout", file=sys.stderr)
    for batch in pf.iter_batches(batch_size=batch_size, columns=columns):
        fb = featurize_batch(batch, names, seq_len, mode)
        writers["features"].write(fb.features)
        writers["target"].write(fb.target)
        writers["mask"].write(fb.mask)
        writers["elapsed"].write(fb.elapsed)
        index.append(fb.index)
        bar.update(batch.num_rows)
    bar.close()
    for w in writers.values():
        w.close()

    frame = pd.concat(index, ignore_index=True) if index else pd.DataFrame()
    if frame.empty:
        frame = pd.DataFrame(columns=["workout_id", "user_id", "start_time", "length"])
    frame.insert(0, "row", np.arange(len(frame), dtype=np.int64))
    frame.to_parquet(OUT / "index.parquet", index=False)
    (OUT / "feature_names.json").write_text(json.dumps(names, indent=2) + "\n")
    n_valid = int(frame["n_valid"].sum()) if "n_valid" in frame else 0
    steps = int(lengths.sum())
    summary = {
        "workouts": len(lengths),
        "rows": n_rows,
        "seq_len": seq_len,
        "long_workouts": mode,
        "features": n_feat,
        "leaky_features": leaky,
        "steps": {
            "total": steps,
            "in_rows": int(frame["length"].sum()) if len(frame) else 0,
            "valid": n_valid,
            "dropped_by_truncation": int(np.maximum(lengths - seq_len, 0).sum())
            if mode == "truncate"
            else 0,
        },
        "padding_fraction": float(1 - frame["length"].sum() / (n_rows * seq_len))
        if n_rows
        else 0.0,
        "length_mismatch_workouts": int(
            frame.drop_duplicates("workout_id")["length_mismatch"].sum()
        )
        if len(frame)
        else 0,
    }
    (OUT / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"featurize: {len(lengths)} workouts -> {n_rows} rows x {seq_len} steps x {n_feat} "
        f"features, {n_valid} valid steps",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
