"""Training data: the memmapped arrays of featurize + the split, served as scaled batches.

Host memory stays bounded: arrays are opened with `mmap_mode="r"` and a batch reads only its
rows. With `on_device=True` the rows are copied once (in chunks) into device tensors, which
removes the per-batch host->device copy on a GPU. There are no DataLoader worker processes, so
CUDA tensors never cross a fork (the reference's GPU path crashed on that).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hrpred.model import apply_scaler

FEATURE_FILES = ("features.npy", "target.npy", "mask.npy", "feature_names.json")
SPLIT_FILES = ("assignment.parquet", "scaler.json")
CHUNK_ROWS = 512  # rows per chunk when streaming over the memmap (~14 MB at 500 x 14 float32)


class DataError(ValueError):
    """The features/split inputs are missing or inconsistent (message says what to do)."""


@dataclass
class TrainData:
    features: np.ndarray  # [N, T, F] float32, unscaled (usually a read-only memmap)
    target: np.ndarray  # [N, T] float32, BPM
    mask: np.ndarray  # [N, T] bool, valid steps
    feature_names: list[str]
    scaler: dict[str, dict[str, float]]
    train_rows: np.ndarray  # int64, ascending
    val_rows: np.ndarray  # int64, ascending
    fingerprint: str  # sha256 of every input file: identifies the data a checkpoint belongs to

    @property
    def seq_len(self) -> int:
        return int(self.features.shape[1])


def _file_sha256(path: Path, h: hashlib._Hash) -> None:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)


def data_fingerprint(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.name.encode() + b"\0")
        _file_sha256(path, h)
    return h.hexdigest()


def load_train_data(features_dir: str | Path, split_dir: str | Path) -> TrainData:
    """Open data/features (memmapped) and data/split; validate shapes and the assignment."""
    features_dir, split_dir = Path(features_dir), Path(split_dir)
    for folder, names, stage in (
        (features_dir, FEATURE_FILES, "featurize"),
        (split_dir, SPLIT_FILES, "split"),
    ):
        for name in names:
            if not (folder / name).is_file():
                raise DataError(f"{folder / name} not found: run `dvc repro {stage}` first")
    try:
        features = np.load(features_dir / "features.npy", mmap_mode="r")
        target = np.load(features_dir / "target.npy", mmap_mode="r")
        mask = np.load(features_dir / "mask.npy", mmap_mode="r")
        names = json.loads((features_dir / "feature_names.json").read_text())
        scaler = json.loads((split_dir / "scaler.json").read_text())
        assignment = pd.read_parquet(split_dir / "assignment.parquet")
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot read training inputs ({exc}); rerun featurize and split") from exc
    if features.ndim != 3 or target.shape != features.shape[:2] or mask.shape != target.shape:
        raise DataError(
            f"inconsistent shapes: features {features.shape}, target {target.shape}, "
            f"mask {mask.shape}; rerun `dvc repro featurize`"
        )
    if not isinstance(names, list) or len(names) != features.shape[2]:
        raise DataError(
            f"feature_names.json lists {len(names) if isinstance(names, list) else '?'} names "
            f"but features.npy has {features.shape[2]} columns; rerun `dvc repro featurize`"
        )
    if not isinstance(scaler, dict):
        raise DataError("scaler.json must map feature -> {mean, std}; rerun `dvc repro split`")
    for col in ("row", "split"):
        if col not in assignment.columns:
            raise DataError(f"assignment.parquet lacks column '{col}'; rerun `dvc repro split`")
    rows = assignment["row"].to_numpy(dtype=np.int64)
    if len(rows) and (rows.min() < 0 or rows.max() >= features.shape[0]):
        raise DataError("assignment.parquet rows fall outside features.npy; rerun split")
    split = assignment["split"].astype(str).to_numpy()
    train_rows = np.sort(rows[split == "train"])
    val_rows = np.sort(rows[split == "val"])
    if len(train_rows) == 0 or len(val_rows) == 0:
        raise DataError(
            f"need train and val rows, got {len(train_rows)} train / {len(val_rows)} val; "
            "check the split params"
        )
    inputs = [features_dir / n for n in FEATURE_FILES] + [split_dir / n for n in SPLIT_FILES]
    return TrainData(
        features=features,
        target=target,
        mask=mask,
        feature_names=[str(n) for n in names],
        scaler=scaler,
        train_rows=train_rows,
        val_rows=val_rows,
        fingerprint=data_fingerprint(inputs),
    )


def target_stats(data: TrainData, rows: np.ndarray) -> tuple[float, float]:
    """Mean and (population) std of the target over valid steps of `rows` (float64, chunked)."""
    total = 0.0
    total_sq = 0.0
    count = 0
    for start in range(0, len(rows), CHUNK_ROWS):
        idx = rows[start : start + CHUNK_ROWS]
        y = np.asarray(data.target[idx], dtype=np.float64)
        m = np.asarray(data.mask[idx], dtype=bool) & np.isfinite(y)
        vals = y[m]
        total += float(vals.sum())
        total_sq += float(np.square(vals).sum())
        count += int(vals.size)
    if count == 0:
        raise DataError("no valid target step in the train rows; check featurize's mask")
    mean = total / count
    var = max(total_sq / count - mean * mean, 0.0)
    std = var**0.5
    return mean, (std if std > 1e-6 else 1.0)


class RowSource:
    """Scaled (x, y, mask) batches for a fixed set of rows, on `device`.

    Positions passed to `batch` index into `rows`. Host mode reads those rows from the memmap
    (a copy of batch size only) and moves them; device mode indexes tensors that were filled
    once. The mask also drops steps whose target is not finite.
    """

    def __init__(
        self,
        data: TrainData,
        rows: np.ndarray,
        mean: np.ndarray,
        std: np.ndarray,
        device: torch.device,
        on_device: bool = False,
    ) -> None:
        self.data = data
        self.rows = np.asarray(rows, dtype=np.int64)
        self.device = device
        self.mean = torch.from_numpy(mean).to(device)
        self.std = torch.from_numpy(std).to(device)
        self.on_device = on_device
        self._pin = device.type == "cuda"
        self.x: torch.Tensor | None = None
        if on_device:
            self._load_all()

    def __len__(self) -> int:
        return len(self.rows)

    def _host_rows(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(self.data.features[idx], dtype=np.float32))
        y = torch.from_numpy(np.ascontiguousarray(self.data.target[idx], dtype=np.float32))
        m = torch.from_numpy(np.ascontiguousarray(self.data.mask[idx], dtype=bool))
        if self._pin:
            x, y, m = x.pin_memory(), y.pin_memory(), m.pin_memory()
        nb = self._pin
        x = x.to(self.device, non_blocking=nb)
        y = y.to(self.device, non_blocking=nb)
        m = m.to(self.device, non_blocking=nb)
        return apply_scaler(x, self.mean, self.std), y, m & torch.isfinite(y)

    def _load_all(self) -> None:
        n = len(self.rows)
        t, f = self.data.features.shape[1:]
        self.x = torch.empty((n, t, f), dtype=torch.float32, device=self.device)
        self.y = torch.empty((n, t), dtype=torch.float32, device=self.device)
        self.m = torch.empty((n, t), dtype=torch.bool, device=self.device)
        for start in range(0, n, CHUNK_ROWS):
            x, y, m = self._host_rows(self.rows[start : start + CHUNK_ROWS])
            self.x[start : start + len(x)] = x
            self.y[start : start + len(x)] = y
            self.m[start : start + len(x)] = m

    def batch(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """positions: int64 CPU tensor of indices into `rows`."""
        if self.x is not None:
            idx = positions.to(self.device, non_blocking=True)
            return self.x[idx], self.y[idx], self.m[idx]
        return self._host_rows(self.rows[positions.numpy()])
