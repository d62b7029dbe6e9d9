"""The export stage as one library call: `run_export(cfg, raw_source, speed, layout)`.

models/model.pt + metrics/evaluate.json + data/features + data/split -> the model bundle
(safetensors weights, config.json, model.onnx, model card: all `hrpred predict` and the app
need; models/calibration.json, the 80% band's constants, becomes config.json `band` and the
band outputs of model.onnx; ONNX parity (HR, spread and band) is checked on test rows, for a
history model with their real histories, read from data/split/history.parquet and
data/features, and with empty ones); data/clean/workouts.parquet + data/split -> the Hugging
Face-style dataset, split exactly as data/split assigned it.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.parquet as pq

from hrpred.bundle.format import StepStatistic
from hrpred.clean.pauses import PAUSE_MIN_S
from hrpred.export.errors import ExportError
from hrpred.export.hf_dataset import export_hf, render_dataset_card, split_facts, workout_splits
from hrpred.export.writer import build_config, sampling_stats, write_bundle
from hrpred.features.registry import BINARY_FEATURES
from hrpred.params import ParamError
from hrpred.personal.config import PersonalConfig
from hrpred.personal.context import build_context
from hrpred.personal.summaries import compute_summaries
from hrpred.store import (
    Layout,
    StoreError,
    open_dataset,
    open_history,
    read_json,
    read_rows,
)
from hrpred.timeseries import SpeedConfig
from hrpred.uncertainty import Calibration, CalibrationError

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class ExportConfig:
    """params.yaml `export:` (units and meaning in the file's comments)."""

    onnx: bool
    onnx_opset: int
    parity_workouts: int
    parity_tolerance_bpm: float
    step_statistic: StepStatistic
    bundle_dir: str
    hf_dir: str
    license: str
    batch_rows: int

    def __post_init__(self) -> None:
        if self.onnx_opset < 17:
            raise ParamError("export.onnx_opset must be >= 17")
        if self.parity_workouts < 0 or not self.parity_tolerance_bpm >= 0:
            raise ParamError("export: parity_workouts and parity_tolerance_bpm must be >= 0")
        if self.batch_rows < 1:
            raise ParamError("export: batch_rows must be >= 1")


def _read_checkpoint(path: Path) -> dict[str, Any]:
    """models/model.pt (weights only), checked for the keys the bundle needs."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        ckpt["state_dict"], ckpt["config"], ckpt["features"]
    except Exception as e:  # noqa: BLE001 - any unreadable checkpoint gets the same message
        raise ExportError(f"cannot read {path} ({e}); rerun `dvc repro train`") from None
    return ckpt


def parity_contexts(
    ckpt: dict[str, Any], layout: Layout, index: pd.DataFrame, test_rows: np.ndarray, n: int
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The first `n` test rows, those with history first, and their real contexts (the
    evaluate stage's: data/split/history.parquet over data/features summaries)."""
    history = open_history(layout.split_dir)
    k_max = int(ckpt["history"]["k_max"])
    ids = index["workout_id"].to_numpy(dtype=np.int64)[test_rows]
    summaries = compute_summaries(layout.features_dir)
    ctx = build_context(ids, history, summaries, k_max)
    order = np.argsort(~ctx.mask.any(axis=1), kind="stable")[:n]
    return test_rows[order], (ctx.values[order], ctx.mask[order])


def _calibration(path: Path) -> dict[str, Any] | None:
    """models/calibration.json (evaluate's band constants), None when the model has no band."""
    content = read_json(path, "evaluate")
    if content.get("available", True) is False:
        return None
    try:
        return Calibration.from_json(content).to_json()
    except CalibrationError as exc:
        raise ExportError(f"{path}: {exc}") from None


def run_export(
    cfg: ExportConfig,
    raw_source: str,
    speed: SpeedConfig,
    personal: PersonalConfig,
    history_runs: int,
    layout: Layout,
) -> dict[str, Any]:
    """Write the bundle and the dataset; returns the bundle config and the dataset counts.
    `personal` (params personal) and `history_runs` (split.max_history) go into the bundle."""
    if not layout.model.exists():
        raise StoreError(f"{layout.model} not found: run `dvc repro train` first")
    metrics = read_json(layout.metrics("evaluate"), "evaluate")
    if not layout.clean_workouts.exists():
        raise StoreError(f"{layout.clean_workouts} not found: run `dvc repro clean` first")
    ds = open_dataset(layout.features_dir, layout.split_dir)
    train_rows = ds.rows["train"]
    if not len(train_rows):
        raise ExportError("the train split is empty: cannot infer the sampling step")
    assignment = ds.split.assignment
    bundle_dir, hf_dir = layout.resolve(cfg.bundle_dir), layout.resolve(cfg.hf_dir)
    # The dataset's parquet reads and writes (pyarrow's C++, without the GIL) run on a second
    # thread while this one imports torch and writes the bundle.
    with ThreadPoolExecutor(1) as pool:
        dataset = pool.submit(_write_dataset, cfg, layout.clean_workouts, assignment, hf_dir)
        ckpt = _read_checkpoint(layout.model)
        sampling = sampling_stats(
            read_rows(ds.data.elapsed, train_rows), ds.data.lengths(train_rows), PAUSE_MIN_S
        )
        check = context = None
        if cfg.onnx and cfg.parity_workouts > 0:
            test_rows = ds.rows["test"]
            if "history" in ckpt:
                test_rows, context = parity_contexts(
                    ckpt, layout, ds.data.index, test_rows, cfg.parity_workouts
                )
            test_rows = test_rows[: cfg.parity_workouts]
            if len(test_rows):
                check = read_rows(ds.data.features, test_rows)
        config = build_config(
            ckpt, metrics, sampling, cfg.step_statistic, split_facts(assignment, raw_source),
            sorted(BINARY_FEATURES), speed=speed, personal=personal, history_runs=history_runs,
            band=_calibration(layout.calibration),
        )  # fmt: skip
        if bundle_dir.exists():
            shutil.rmtree(bundle_dir)
        write_bundle(
            bundle_dir, ckpt["state_dict"], config, onnx=cfg.onnx, opset=cfg.onnx_opset,
            check_features=check, tolerance_bpm=cfg.parity_tolerance_bpm, check_context=context,
        )  # fmt: skip
        summary = dataset.result()
    (hf_dir / "README.md").write_text(render_dataset_card(summary, raw_source, cfg.license))
    return {"config": config, "dataset": summary, "bundle_dir": bundle_dir, "hf_dir": hf_dir}


def _write_dataset(
    cfg: ExportConfig, workouts: Path, assignment: pd.DataFrame, hf_dir: Path
) -> dict[str, Any]:
    """data/clean/workouts.parquet -> the Hugging Face-style split files; their counts."""
    if hf_dir.exists():
        shutil.rmtree(hf_dir)
    batches = pq.ParquetFile(workouts).iter_batches(batch_size=cfg.batch_rows)
    return export_hf(batches, workout_splits(assignment), hf_dir)


def summary_line(result: dict[str, Any], cfg: ExportConfig) -> str:
    """One line for stderr: the bundle's step and ONNX parity, the dataset's split sizes."""
    config, counts = result["config"], result["dataset"]["splits"]
    parity = config.get("onnx", {}).get("parity", {})
    step = config["sampling"][f"{cfg.step_statistic}_step_s"]
    return (
        f"export: bundle -> {cfg.bundle_dir} (step {step:.2f} s"
        + (f", ONNX parity {parity['max_abs_diff_bpm']:.1e} BPM" if parity else "")
        + (" incl. the band" if parity and config["onnx"].get("band") else "")
        + f"); dataset -> {cfg.hf_dir} (train {counts['train']['workouts']}, "
        f"val {counts['val']['workouts']}, test {counts['test']['workouts']} workouts)"
    )
