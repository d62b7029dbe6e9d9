"""Score one pipeline's trained model on ANOTHER pipeline's test split: cold, network-personal
and personal (+ residual correction) MAE on the recorded HR of valid steps.

Two copies of the repo that differ only in how the training data was made (e.g. the clean
stage before and after a change, both run on the same raw file) train two models; test sets
and histories differ with the cleaning, so the fair comparison is both models on the SAME
test split, read from DATA_REPO (its features, split, history, targets, masks and its
params.yaml's `evaluate` and `personal.residual`), with the model of MODEL_REPO (the
checkpoint carries its own feature scaler). Prints one line; nothing is written.

    python benchmarks/cross_eval.py DATA_REPO MODEL_REPO [--ids ids.npy]

`--ids`: score only these test workout ids (e.g. the test workouts two pipelines share).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_repo", type=Path)
    ap.add_argument("model_repo", type=Path)
    ap.add_argument("--ids", type=Path, help=".npy of test workout ids to keep")
    args = ap.parse_args()
    model_path = args.model_repo.resolve() / "models" / "model.pt"
    os.chdir(args.data_repo)  # params.yaml and the data layout are read from here

    from hrpred.evaluate.config import EvalConfig
    from hrpred.evaluate.personal import learned_personal, learned_with_residual
    from hrpred.params import load_config
    from hrpred.personal.config import OffsetConfig
    from hrpred.store import Layout, open_dataset, open_history, read_rows

    cfg = load_config(EvalConfig, "evaluate")
    residual = load_config(OffsetConfig, "personal.residual")
    layout = Layout()
    ds = open_dataset(layout.features_dir, layout.split_dir)
    history = open_history(layout.split_dir)
    learned = learned_personal(model_path, layout.features_dir, ds, history)
    if learned is None:
        raise SystemExit(f"{model_path} is not a history-conditioned model")
    rows = np.sort(ds.rows["test"])
    ids = ds.data.index["workout_id"].to_numpy()[rows]
    if args.ids is not None:
        keep = np.isin(ids, np.load(args.ids))
        rows, ids = rows[keep], ids[keep]
    needed = history[history["workout_id"].isin(np.unique(ids))]
    net, _, shift, _ = learned_with_residual(ds, rows, needed, ids, learned, cfg, residual)
    y = read_rows(ds.data.target, rows).astype(np.float64)
    v = np.asarray(read_rows(ds.data.mask, rows), dtype=bool)
    cold, _ = learned.cold(read_rows(ds.data.features, rows))

    def mae(pred: np.ndarray) -> float:
        return float(np.abs(y - pred)[v].mean())

    print(
        f"data {args.data_repo} model {args.model_repo}: {len(rows)} test workouts, "
        f"{int(v.sum())} steps; MAE cold {mae(cold):.3f}, personal network "
        f"{mae(net):.3f}, personal {mae(net + shift[:, None]):.3f} BPM"
    )


if __name__ == "__main__":
    main()
