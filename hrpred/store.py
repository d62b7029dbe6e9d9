"""The one owner of the on-disk contracts between stages.

Layout (relative to the repository root; `Layout(root)` gives every path):

    data/clean/      workouts.parquet, rejects.parquet, report.parquet     (clean)
    data/features/   features.npy [N,T,F] float32 (unscaled), target.npy [N,T] float32 (BPM),
                     mask.npy [N,T] bool, elapsed.npy [N,T] float32 (s), index.parquet
                     (row, workout_id, user_id, start_time, length, ...), feature_names.json,
                     summary.json                                          (featurize)
    data/split/      assignment.parquet (row, workout_id, user_id, split), scaler.json
                     (feature -> {mean, std}, train rows only), history.parquet (workout_id,
                     hist_workout_id, rank, days_before: each workout's earlier workouts of
                     the same user, from user_id + start_time only)        (split)
    models/          model.pt, checkpoint.pt                               (train)
    data/eval/       predictions.parquet, workouts.parquet                 (evaluate)
    metrics/<stage>.json, plots/, dvclive/train/

Arrays are written row block by row block (`RowWriter`) and read memory-mapped or in bounded
blocks (`iter_row_blocks`, `read_rows`), so no stage holds a whole array at full scale. Every
reader validates what it opens and raises `StoreError` naming the stage to rerun.
"""

from __future__ import annotations

import hashlib
import json
import mmap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hrpred.errors import HrpredError

SPLITS = ("train", "val", "test")
ARRAYS = ("features", "target", "mask", "elapsed")
ARRAY_DTYPES = {
    "features": np.float32,
    "target": np.float32,
    "mask": np.bool_,
    "elapsed": np.float32,
}
INDEX_COLUMNS = ("row", "workout_id", "user_id", "start_time", "length")
ASSIGNMENT_COLUMNS = ("row", "workout_id", "split")
HISTORY_COLUMNS = ("workout_id", "hist_workout_id", "rank", "days_before")


class StoreError(HrpredError):
    """An input of a stage is missing or inconsistent (the message names the stage to rerun)."""


@dataclass(frozen=True)
class Layout:
    """Every path of the pipeline's outputs, under `root` (the repository root by default)."""

    root: Path = Path(".")

    @property
    def clean_dir(self) -> Path:
        return self.root / "data" / "clean"

    @property
    def clean_workouts(self) -> Path:
        return self.clean_dir / "workouts.parquet"

    @property
    def clean_rejects(self) -> Path:
        return self.clean_dir / "rejects.parquet"

    @property
    def clean_report(self) -> Path:
        return self.clean_dir / "report.parquet"

    @property
    def features_dir(self) -> Path:
        return self.root / "data" / "features"

    @property
    def split_dir(self) -> Path:
        return self.root / "data" / "split"

    @property
    def history(self) -> Path:
        return self.split_dir / "history.parquet"

    @property
    def model(self) -> Path:
        return self.root / "models" / "model.pt"

    @property
    def calibration(self) -> Path:
        """The band's conformal constants (written by evaluate, carried in the bundle)."""
        return self.root / "models" / "calibration.json"

    @property
    def checkpoint(self) -> Path:
        return self.root / "models" / "checkpoint.pt"

    @property
    def live_dir(self) -> Path:
        return self.root / "dvclive" / "train"

    @property
    def eval_dir(self) -> Path:
        return self.root / "data" / "eval"

    @property
    def predictions(self) -> Path:
        return self.eval_dir / "predictions.parquet"

    @property
    def eval_workouts(self) -> Path:
        return self.eval_dir / "workouts.parquet"

    @property
    def plots_dir(self) -> Path:
        return self.root / "plots"

    def metrics(self, stage: str) -> Path:
        """metrics/<stage>.json."""
        return self.root / "metrics" / f"{stage}.json"

    def resolve(self, path: str | Path) -> Path:
        """A path from params.yaml (relative to the repository root) under `root`."""
        path = Path(path)
        return path if path.is_absolute() else self.root / path


# --- JSON --------------------------------------------------------------------------------


def json_ready(value: Any, digits: int | None = None) -> Any:
    """`value` with numpy scalars/arrays as plain Python, NaN/inf as None, and floats rounded
    to `digits` (None: as they are), so JSON outputs are stable and valid."""
    if isinstance(value, dict):
        return {str(k): json_ready(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v, digits) for v in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist(), digits)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not np.isfinite(v):
            return None
        return round(v, digits) if digits is not None else v
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: Path, value: Any, digits: int | None = None) -> None:
    """Rewrite `path` with `value` as indented JSON (parent folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_ready(value, digits), indent=2) + "\n")


def read_json(path: Path, stage: str) -> Any:
    """JSON from `path`, or a StoreError telling to rerun `stage`."""
    if not path.is_file():
        raise StoreError(f"{path} not found: run `dvc repro {stage}` first")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise StoreError(f"{path} is not JSON ({exc}); rerun `dvc repro {stage}`") from None


# --- .npy row I/O ------------------------------------------------------------------------


class RowWriter:
    """Write a [N, ...] .npy file row block by row block, without mapping it into memory.

    The file (header + full size) is created by `np.lib.format.open_memmap`, then blocks are
    written with plain file writes, so resident memory stays at one block, not the array.
    """

    def __init__(self, path: str | Path, shape: tuple[int, ...], dtype: np.dtype | type) -> None:
        self.path = Path(path)
        self.shape = shape
        self.dtype = np.dtype(dtype)
        mm = np.lib.format.open_memmap(self.path, mode="w+", dtype=self.dtype, shape=shape)
        self._offset = int(mm.offset)
        del mm
        self._row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self._file = self.path.open("r+b")
        self.rows_written = 0

    def write(self, block: np.ndarray) -> None:
        """Append rows [rows_written, rows_written + len(block))."""
        if block.shape[1:] != self.shape[1:]:
            raise ValueError(f"block shape {block.shape} does not fit {self.shape}")
        if self.rows_written + len(block) > self.shape[0]:
            raise ValueError(f"{self.path}: more rows than the declared {self.shape[0]}")
        self._file.seek(self._offset + self.rows_written * self._row_bytes)
        self._file.write(np.ascontiguousarray(block, dtype=self.dtype).tobytes())
        self.rows_written += len(block)

    def close(self) -> None:
        self._file.close()
        if self.rows_written != self.shape[0]:
            raise ValueError(f"{self.path}: wrote {self.rows_written} of {self.shape[0]} rows")

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._file.close()


def iter_row_blocks(path: str | Path, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first_row, rows) blocks of a .npy file with plain reads (bounded memory)."""
    mm = np.load(path, mmap_mode="r")
    shape, dtype, offset = mm.shape, mm.dtype, int(mm.offset)
    del mm
    row_items = int(np.prod(shape[1:], dtype=np.int64))
    with Path(path).open("rb") as f:
        for start in range(0, shape[0], block_rows):
            stop = min(start + block_rows, shape[0])
            f.seek(offset + start * row_items * dtype.itemsize)
            data = np.fromfile(f, dtype=dtype, count=(stop - start) * row_items)
            yield start, data.reshape((stop - start, *shape[1:]))


def read_rows(arr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`arr[rows]` for sorted `rows`; a memmap from np.load is read with plain file reads.

    Touching a memmap maps its file pages into the process (they count as resident memory
    until the process ends), so full-scale splits are read without the map instead.
    """
    rows = np.asarray(rows, dtype=np.int64)
    base = getattr(arr, "base", None)
    if not (
        isinstance(arr, np.memmap)
        and isinstance(base, mmap.mmap)
        and arr.filename
        and arr.flags.c_contiguous
    ):
        return np.asarray(arr[rows])
    out = np.empty((len(rows), *arr.shape[1:]), dtype=arr.dtype)
    if len(rows) == 0:
        return out
    row_bytes = out[0].nbytes
    view = out.reshape(len(rows), -1).view(np.uint8)
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1  # contiguous runs: one read each
    with open(arr.filename, "rb") as f:
        for s, e in zip(np.r_[0, breaks], np.r_[breaks, len(rows)], strict=True):
            f.seek(int(arr.offset) + int(rows[s]) * row_bytes)
            if f.readinto(memoryview(view[s:e]).cast("B")) != (e - s) * row_bytes:
                raise StoreError(f"{arr.filename} is truncated: rerun `dvc repro featurize`")
    return out


# --- data/features -----------------------------------------------------------------------


@dataclass
class Features:
    """data/features, memory-mapped: arrays [N, T, ...], feature names, the row index."""

    features: np.ndarray  # [N, T, F] float32, unscaled
    target: np.ndarray  # [N, T] recorded HR (BPM)
    mask: np.ndarray  # [N, T] valid steps
    elapsed: np.ndarray  # [N, T] seconds since start
    names: list[str]
    index: pd.DataFrame  # one row per array row, sorted by `row`

    @property
    def n_rows(self) -> int:
        return int(self.features.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.features.shape[1])

    def lengths(self, rows: np.ndarray) -> np.ndarray:
        """Real (non-padding) steps of each row, from the index (never from the HR mask)."""
        return np.clip(self.index["length"].to_numpy()[rows], 0, self.seq_len).astype(np.int64)


class FeaturesWriter:
    """Writes data/features: sized up front, filled block by block, index and names at close."""

    def __init__(self, folder: Path, n_rows: int, seq_len: int, names: Sequence[str]) -> None:
        self.folder = Path(folder)
        self.names = [str(n) for n in names]
        self.folder.mkdir(parents=True, exist_ok=True)
        shapes = {
            "features": (n_rows, seq_len, len(self.names)),
            "target": (n_rows, seq_len),
            "mask": (n_rows, seq_len),
            "elapsed": (n_rows, seq_len),
        }
        self._writers = {
            k: RowWriter(self.folder / f"{k}.npy", shapes[k], ARRAY_DTYPES[k]) for k in ARRAYS
        }
        self._index: list[pd.DataFrame] = []

    def write(self, arrays: dict[str, np.ndarray], index: pd.DataFrame) -> None:
        """Append rows: `arrays` has every name of ARRAYS, `index` one line per row."""
        for k in ARRAYS:
            self._writers[k].write(arrays[k])
        self._index.append(index)

    def close(self, summary: dict[str, Any]) -> pd.DataFrame:
        """Finish the arrays, write index.parquet, feature_names.json and summary.json."""
        for w in self._writers.values():
            w.close()
        frame = pd.concat(self._index, ignore_index=True) if self._index else pd.DataFrame()
        if frame.empty:
            frame = pd.DataFrame(columns=[c for c in INDEX_COLUMNS if c != "row"])
        frame.insert(0, "row", np.arange(len(frame), dtype=np.int64))
        frame.to_parquet(self.folder / "index.parquet", index=False)
        write_json(self.folder / "feature_names.json", self.names)
        write_json(self.folder / "summary.json", summary)
        return frame


def feature_files(folder: Path) -> list[Path]:
    """The files of data/features that later stages read, in a fixed order."""
    return [folder / f"{k}.npy" for k in ARRAYS] + [
        folder / "index.parquet",
        folder / "feature_names.json",
    ]


def open_features(folder: str | Path) -> Features:
    """data/features, memory-mapped and validated."""
    folder = Path(folder)
    for path in feature_files(folder):
        if not path.is_file():
            raise StoreError(f"{path} not found: run `dvc repro featurize` first")
    try:
        arrays = {k: np.load(folder / f"{k}.npy", mmap_mode="r") for k in ARRAYS}
        names = json.loads((folder / "feature_names.json").read_text())
        index = pd.read_parquet(folder / "index.parquet")
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read {folder} ({exc}); rerun `dvc repro featurize`") from None
    f = arrays["features"]
    if f.ndim != 3 or any(arrays[k].shape != f.shape[:2] for k in ARRAYS[1:]):
        shapes = ", ".join(f"{k} {arrays[k].shape}" for k in ARRAYS)
        raise StoreError(f"{folder}: arrays disagree in shape ({shapes}); rerun featurize")
    if not isinstance(names, list) or len(names) != f.shape[2]:
        raise StoreError(
            f"{folder}/feature_names.json does not list the {f.shape[2]} feature columns; "
            "rerun `dvc repro featurize`"
        )
    missing = [c for c in INDEX_COLUMNS if c not in index.columns]
    if missing:
        raise StoreError(f"{folder}/index.parquet lacks {missing}; rerun `dvc repro featurize`")
    index = index.sort_values("row").reset_index(drop=True)
    if len(index) != f.shape[0] or not np.array_equal(
        index["row"].to_numpy(), np.arange(len(index))
    ):
        raise StoreError(
            f"{folder}/index.parquet has {len(index)} rows for {f.shape[0]} array rows; "
            "rerun `dvc repro featurize`"
        )
    return Features(
        features=arrays["features"],
        target=arrays["target"],
        mask=arrays["mask"],
        elapsed=arrays["elapsed"],
        names=[str(n) for n in names],
        index=index,
    )


# --- data/split --------------------------------------------------------------------------


@dataclass
class Split:
    """data/split: the assignment of every row and the train-only scaler."""

    assignment: pd.DataFrame  # row, workout_id, user_id, split
    scaler: dict[str, dict[str, float]]  # feature -> {mean, std}
    rows: dict[str, np.ndarray]  # split name -> array rows (ascending)


def split_files(folder: Path) -> list[Path]:
    """The files of data/split that later stages read, in a fixed order."""
    return [folder / "assignment.parquet", folder / "scaler.json"]


def write_split(folder: Path, assignment: pd.DataFrame, scaler: dict[str, Any]) -> None:
    """Rewrite data/split."""
    folder.mkdir(parents=True, exist_ok=True)
    assignment.to_parquet(folder / "assignment.parquet", index=False)
    write_json(folder / "scaler.json", scaler)


def open_split(folder: str | Path, n_rows: int | None = None) -> Split:
    """data/split, validated (against `n_rows` array rows when given)."""
    folder = Path(folder)
    for path in split_files(folder):
        if not path.is_file():
            raise StoreError(f"{path} not found: run `dvc repro split` first")
    try:
        assignment = pd.read_parquet(folder / "assignment.parquet")
        scaler = json.loads((folder / "scaler.json").read_text())
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read {folder} ({exc}); rerun `dvc repro split`") from None
    missing = [c for c in ASSIGNMENT_COLUMNS if c not in assignment.columns]
    if missing:
        raise StoreError(f"{folder}/assignment.parquet lacks {missing}; rerun `dvc repro split`")
    if not isinstance(scaler, dict):
        raise StoreError(f"{folder}/scaler.json must map feature -> {{mean, std}}; rerun split")
    all_rows = assignment["row"].to_numpy(dtype=np.int64)
    if n_rows is not None and len(all_rows) and (all_rows.min() < 0 or all_rows.max() >= n_rows):
        raise StoreError(
            f"{folder}/assignment.parquet rows fall outside data/features; rerun split"
        )
    split = assignment["split"].astype(str).to_numpy()
    rows = {s: np.sort(all_rows[split == s]) for s in SPLITS}
    return Split(assignment=assignment, scaler=scaler, rows=rows)


def write_history(folder: Path, history: pd.DataFrame) -> None:
    """Rewrite data/split/history.parquet."""
    folder.mkdir(parents=True, exist_ok=True)
    history.to_parquet(folder / "history.parquet", index=False)


def open_history(folder: str | Path) -> pd.DataFrame:
    """data/split/history.parquet, validated (columns, ranks from 1, days_before > 0)."""
    path = Path(folder) / "history.parquet"
    if not path.is_file():
        raise StoreError(f"{path} not found: run `dvc repro split` first")
    try:
        history = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read {path} ({exc}); rerun `dvc repro split`") from None
    missing = [c for c in HISTORY_COLUMNS if c not in history.columns]
    if missing:
        raise StoreError(f"{path} lacks {missing}; rerun `dvc repro split`")
    if len(history) and (history["rank"].min() < 1 or not (history["days_before"] > 0).all()):
        raise StoreError(f"{path}: ranks must start at 1 and days_before be > 0; rerun split")
    return history


# --- both --------------------------------------------------------------------------------


@dataclass
class Dataset:
    """data/features + data/split, checked against each other."""

    data: Features
    split: Split

    @property
    def rows(self) -> dict[str, np.ndarray]:
        return self.split.rows


def open_dataset(features_dir: str | Path, split_dir: str | Path) -> Dataset:
    """data/features and data/split, validated together (same rows, same workouts)."""
    data = open_features(features_dir)
    split = open_split(split_dir, data.n_rows)
    a = split.assignment
    known = data.index["workout_id"].to_numpy()[a["row"].to_numpy(dtype=np.int64)]
    if not np.array_equal(known, a["workout_id"].to_numpy()):
        raise StoreError(
            f"{split_dir}/assignment.parquet does not match {features_dir}: rerun `dvc repro split`"
        )
    return Dataset(data=data, split=split)


def fingerprint(paths: Sequence[Path]) -> str:
    """sha256 over the names and bytes of `paths`: identifies the data a model was fit on."""
    h = hashlib.sha256()
    for path in paths:
        h.update(path.name.encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()
