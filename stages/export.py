"""export: models/model.pt + metrics -> models/bundle/; clean workouts + split -> data/export/hf/.

The bundle (safetensors weights, config.json, model.onnx, model card) is all `hrpred predict`
and the app need. The dataset export uses exactly data/split's assignment.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from hrpred.export.bundle import STEP_STATISTICS, build_config, sampling_stats, write_bundle
from hrpred.export.hf_dataset import (
    export_hf,
    protocol_text,
    render_dataset_card,
    workout_splits,
)
from hrpred.features.registry import BINARY_FEATURES
from hrpred.params import ParamError, load_params

MODEL = Path("models/model.pt")
METRICS = Path("metrics/evaluate.json")
CLEAN = Path("data/clean/workouts.parquet")
ASSIGNMENT = Path("data/split/assignment.parquet")
FEATURES = Path("data/features")


def _need(path: Path, stage: str) -> None:
    if not path.exists():
        raise SystemExit(f"export: {path} not found: run `dvc repro {stage}` first")


def main() -> None:
    try:
        p = load_params("export")
        onnx = p.bool("onnx")
        opset = p.int("onnx_opset", 17)
        parity_n = p.int("parity_workouts", 16)
        tolerance = p.float("parity_tolerance_bpm", 1e-3)
        statistic = p.str("step_statistic", "mean_active")
        pause_s = p.float("pause_s", 60.0)
        bundle_dir = Path(p.str("bundle_dir", "models/bundle"))
        hf_dir = Path(p.str("hf_dir", "data/export/hf"))
        license_id = p.str("license", "other")
        batch_rows = p.int("batch_rows", 1024)
        source = load_params("data").str("raw")
    except ParamError as e:
        raise SystemExit(f"export: {e}") from None
    if statistic not in STEP_STATISTICS:
        raise SystemExit(f"export: export.step_statistic must be one of {STEP_STATISTICS}")
    if opset < 17:
        raise SystemExit("export: export.onnx_opset must be >= 17")
    for path, stage in (
        (MODEL, "train"),
        (METRICS, "evaluate"),
        (CLEAN, "clean"),
        (ASSIGNMENT, "split"),
        (FEATURES / "elapsed.npy", "featurize"),
        (FEATURES / "index.parquet", "featurize"),
    ):
        _need(path, stage)

    import torch

    try:
        ckpt = torch.load(MODEL, map_location="cpu", weights_only=True)
        ckpt["state_dict"], ckpt["config"], ckpt["features"]  # noqa: B018 - format check
    except Exception as e:  # noqa: BLE001 - any unreadable checkpoint gets the same message
        raise SystemExit(f"export: cannot read {MODEL} ({e}); rerun `dvc repro train`") from None
    try:
        metrics = json.loads(METRICS.read_text())
    except ValueError as e:
        raise SystemExit(
            f"export: {METRICS} is not JSON ({e}); rerun `dvc repro evaluate`"
        ) from None

    assignment = pd.read_parquet(ASSIGNMENT)
    index = pd.read_parquet(FEATURES / "index.parquet")
    elapsed = np.load(FEATURES / "elapsed.npy", mmap_mode="r")
    if len(index) != len(assignment) or len(index) != elapsed.shape[0]:
        raise SystemExit(
            "export: data/features and data/split disagree on the number of rows; "
            "rerun `dvc repro split`"
        )
    rows = assignment["row"].to_numpy()
    split = assignment["split"].to_numpy()
    train_rows = np.sort(rows[split == "train"])
    if not len(train_rows):
        raise SystemExit("export: the train split is empty: cannot infer the sampling step")
    length = index.set_index("row")["length"]
    try:
        sampling = sampling_stats(
            np.asarray(elapsed[train_rows]), length.loc[train_rows].to_numpy(), pause_s
        )
    except ValueError as e:
        raise SystemExit(f"export: {e}") from None

    try:
        splits = workout_splits(assignment)
    except ValueError as e:
        raise SystemExit(f"export: {e}") from None
    user_sets = {
        s: set(assignment.loc[assignment["split"] == s, "user_id"])
        for s in ("train", "val", "test")
    }
    overlap = len(
        (user_sets["train"] & user_sets["val"])
        | (user_sets["train"] & user_sets["test"])
        | (user_sets["val"] & user_sets["test"])
    )
    data = {
        "source": source,
        "protocol": protocol_text(overlap),
        "splits": {
            s: {
                "workouts": int(assignment.loc[assignment["split"] == s, "workout_id"].nunique()),
                "users": len(user_sets[s]),
                "rows": int(np.sum(split == s)),
            }
            for s in ("train", "val", "test")
        },
    }

    check = None
    if onnx and parity_n > 0:
        test_rows = np.sort(rows[split == "test"])[:parity_n]
        if len(test_rows):
            check = np.asarray(np.load(FEATURES / "features.npy", mmap_mode="r")[test_rows])
    config = build_config(ckpt, metrics, sampling, statistic, data, sorted(BINARY_FEATURES))
    if bundle_dir.exists():
        shutil.rmtree(bundle_dir)
    try:
        write_bundle(
            bundle_dir, ckpt["state_dict"], config, onnx=onnx, opset=opset,
            check_features=check, tolerance_bpm=tolerance,
        )  # fmt: skip
    except ValueError as e:
        raise SystemExit(f"export: {e}") from None

    if hf_dir.exists():
        shutil.rmtree(hf_dir)
    pf = pq.ParquetFile(CLEAN)
    summary = export_hf(pf.iter_batches(batch_size=batch_rows), splits, hf_dir)
    (hf_dir / "README.md").write_text(render_dataset_card(summary, source, license_id))

    c = summary["splits"]
    parity = config.get("onnx", {}).get("parity", {})
    print(
        f"export: bundle -> {bundle_dir} (step {sampling[f'{statistic}_step_s']:.2f} s"
        + (f", ONNX parity {parity['max_abs_diff_bpm']:.1e} BPM" if parity else "")
        + f"); dataset -> {hf_dir} (train {c['train']['workouts']}, val {c['val']['workouts']}, "
        f"test {c['test']['workouts']} workouts)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
