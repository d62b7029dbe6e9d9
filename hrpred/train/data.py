"""Training data: the memmapped arrays of featurize + the split, served as scaled batches.

Host memory stays bounded: arrays are opened with `mmap_mode="r"` and a batch reads only its
rows. With `on_device=True` the rows are copied once (in chunks) into device tensors, which
removes the per-batch host->device copy on a GPU. There are no DataLoader worker processes, so
CUDA tensors never cross a fork (the reference's GPU path crashed on that).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hrpred import store
from hrpred.errors import HrpredError
from hrpred.features.scaler import apply_scaler

CHUNK_ROWS = 512  # rows per chunk when streaming over the memmap (~14 MB at 500 x 14 float32)


class DataError(HrpredError, ValueError):
    """The inputs cannot be trained on (message says what to change)."""


@dataclass
class TrainData:
    """The training view of data/features + data/split (`store.Dataset`)."""

    dataset: store.Dataset
    fingerprint: str  # sha256 of the input files: identifies the data a checkpoint belongs to

    @property
    def features(self) -> np.ndarray:  # [N, T, F] float32, unscaled (a read-only memmap)
        return self.dataset.data.features

    @property
    def target(self) -> np.ndarray:  # [N, T] float32, BPM
        return self.dataset.data.target

    @property
    def mask(self) -> np.ndarray:  # [N, T] bool, valid steps
        return self.dataset.data.mask

    @property
    def feature_names(self) -> list[str]:
        return self.dataset.data.names

    @property
    def scaler(self) -> dict[str, dict[str, float]]:
        return self.dataset.split.scaler

    @property
    def train_rows(self) -> np.ndarray:  # int64, ascending
        return self.dataset.rows["train"]

    @property
    def val_rows(self) -> np.ndarray:  # int64, ascending
        return self.dataset.rows["val"]

    @property
    def seq_len(self) -> int:
        return int(self.features.shape[1])


def fingerprint_files(features_dir: Path, split_dir: Path) -> list[Path]:
    """The files a trained model depends on, in the order hashed into its fingerprint.

    Fixed (not `store.feature_files`): changing the list or its order changes every fingerprint,
    so an unfinished models/checkpoint.pt would no longer be resumed.
    """
    return [
        features_dir / "features.npy",
        features_dir / "target.npy",
        features_dir / "mask.npy",
        features_dir / "feature_names.json",
        split_dir / "assignment.parquet",
        split_dir / "scaler.json",
    ]


def load_train_data(features_dir: str | Path, split_dir: str | Path) -> TrainData:
    """Open data/features (memmapped) and data/split, validated; train and val rows needed."""
    features_dir, split_dir = Path(features_dir), Path(split_dir)
    dataset = store.open_dataset(features_dir, split_dir)
    n_train, n_val = len(dataset.rows["train"]), len(dataset.rows["val"])
    if n_train == 0 or n_val == 0:
        raise DataError(
            f"need train and val rows, got {n_train} train / {n_val} val; check the split params"
        )
    fingerprint = store.fingerprint(fingerprint_files(features_dir, split_dir))
    return TrainData(dataset=dataset, fingerprint=fingerprint)


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
        context: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.data = data
        # scaled history context [n, K, C] + mask [n, K], aligned with `rows` (or None)
        self.context = None
        if context is not None:
            self.context = (
                torch.from_numpy(np.ascontiguousarray(context[0], dtype=np.float32)).to(device),
                torch.from_numpy(np.ascontiguousarray(context[1], dtype=bool)).to(device),
            )
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

    def batch(
        self, positions: torch.Tensor, sizes: np.ndarray | None = None
    ) -> tuple[torch.Tensor, ...]:
        """positions: int64 CPU tensor of indices into `rows` -> (x, y, mask), plus (context,
        context mask) with a context; `sizes` keeps only that many most recent history entries
        per row (training draws them), None keeps all."""
        if self.x is not None:
            idx = positions.to(self.device, non_blocking=True)
            out: tuple[torch.Tensor, ...] = (self.x[idx], self.y[idx], self.m[idx])
        else:
            out = self._host_rows(self.rows[positions.numpy()])
        if self.context is None:
            return out
        idx = positions.to(self.device)
        ctx, cmask = self.context[0][idx], self.context[1][idx]
        if sizes is not None:
            keep = (
                torch.arange(cmask.shape[1], device=self.device)[None, :]
                < torch.from_numpy(np.asarray(sizes, dtype=np.int64)).to(self.device)[:, None]
            )
            cmask = cmask & keep
            ctx = ctx * cmask.unsqueeze(-1)
        return (*out, ctx, cmask)
