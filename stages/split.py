"""split: data/features/ -> data/split/{assignment.parquet,scaler.json}, metrics/split.json.

Assigns every feature row to train/val/test (or `dropped`, chronological only) and fits the
feature scaler on train rows' valid steps, reading features.npy block by block.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from hrpred.features.registry import BINARY_FEATURES
from hrpred.features.rows import iter_row_blocks, npy_shape
from hrpred.params import ParamError, load_params
from hrpred.split.assign import assign, fit_scaler, split_counts

FEATURES = Path("data/features")
OUT = Path("data/split")
METRICS = Path("metrics/split.json")


def main() -> None:
    try:
        p = load_params("split")
        method = p.str("method")
        seed = p.int("seed")
        fractions = p.floats("fractions")
        stratify = p.bool("stratify", True)
        chrono = p.floats("chrono_fractions", [0.8, 0.1, 0.1])
        min_workouts = p.int("min_workouts")
        drop_first = p.bool("chrono_drop_first", False)
        block_rows = p.int("scaler_block_rows", 1024)
    except ParamError as e:
        raise SystemExit(f"split: {e}") from None
    needed = ["index.parquet", "feature_names.json", "features.npy", "mask.npy"]
    missing = [n for n in needed if not (FEATURES / n).exists()]
    if missing:
        raise SystemExit(f"split: {FEATURES} lacks {missing}: run `dvc repro featurize` first")
    index = pd.read_parquet(FEATURES / "index.parquet")
    names = json.loads((FEATURES / "feature_names.json").read_text())
    (n_rows, _, n_feat), _ = npy_shape(FEATURES / "features.npy")
    if n_rows != len(index) or n_feat != len(names):
        raise SystemExit(
            f"split: {FEATURES} is inconsistent (features {n_rows}x{n_feat}, index {len(index)}, "
            f"{len(names)} names): rerun `dvc repro featurize`"
        )
    try:
        table = assign(
            index, method, seed=seed, fractions=fractions, stratify=stratify,
            chrono_fractions=chrono, min_workouts=min_workouts, drop_first=drop_first,
        )  # fmt: skip
    except ValueError as e:
        raise SystemExit(f"split: {e}") from None

    is_train = (table["split"] == "train").to_numpy()
    blocks = (
        (f, m)
        for (_, f), (_, m) in zip(
            iter_row_blocks(FEATURES / "features.npy", block_rows),
            iter_row_blocks(FEATURES / "mask.npy", block_rows),
            strict=True,
        )
    )
    scaler, degenerate = fit_scaler(blocks, is_train, names, BINARY_FEATURES)

    OUT.mkdir(parents=True, exist_ok=True)
    table.to_parquet(OUT / "assignment.parquet", index=False)
    (OUT / "scaler.json").write_text(json.dumps(scaler, indent=2) + "\n")
    counts = split_counts(table, index)
    total_w = max(counts["workouts"]["total"], 1)
    metrics = {
        "method": method,
        "seed": seed,
        "stratify": stratify if method == "user" else None,
        **counts,
        "workout_fraction": {s: counts["workouts"][s] / total_w for s in ("train", "val", "test")},
        "scaler": {
            "scaled_features": len(scaler),
            "unscaled_features": [n for n in names if n not in scaler],
            "degenerate": degenerate,
        },
    }
    METRICS.parent.mkdir(parents=True, exist_ok=True)
    METRICS.write_text(json.dumps(metrics, indent=2) + "\n")
    w = counts["workouts"]
    print(
        f"split ({method}): workouts train {w['train']} / val {w['val']} / test {w['test']}"
        f" / dropped {w['dropped']}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
