"""Clean workouts (Arrow record batches) -> fixed-length feature rows and index records.

Works one record batch at a time so the featurize stage can stream a 40k-workout parquet file
into on-disk arrays. The index columns after `length` (duration, distance, speed source, clean's
fault/correction labels, ...) are reporting-only descriptors for evaluation breakdowns; they are
never model inputs (fault/correction come from clean's look at HR). Heart rate is read only as the target (and for the explicitly leaky
features when they are requested); the features themselves come from `hrpred.features.registry`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hrpred.features.registry import WorkoutInputs, compute_features, needs_hr
from hrpred.features.rows import pack_rows, windows

# Columns of data/clean/workouts.parquet this module reads (docs/architecture.md).
CLEAN_COLUMNS = (
    "workout_id", "user_id", "line", "sport", "gender", "timestamp", "speed", "speed_source",
    "altitude", "heart_rate", "hr_valid", "fault", "correction",
)  # fmt: skip
REQUIRED_COLUMNS = ("workout_id", "user_id", "timestamp", "speed", "altitude", "heart_rate")


def list_lengths(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Length of each list (null lists count 0)."""
    lengths = pc.fill_null(pc.list_value_length(column), 0)
    return np.asarray(lengths.to_numpy(zero_copy_only=False), dtype=np.int64)


def rows_per_workout(lengths: np.ndarray, seq_len: int, mode: str) -> np.ndarray:
    """How many rows each workout becomes (the stage sizes its arrays with this)."""
    return np.array([len(windows(int(n), seq_len, mode)) for n in lengths], dtype=np.int64)


def _split_lists(column: pa.Array, fill: float | bool, dtype: type) -> list[np.ndarray]:
    """One numpy array per list; null elements become `fill`."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    offsets = column.offsets.to_numpy()
    values = column.values
    if dtype is not bool:
        values = values.cast(pa.float64())  # int timestamps too: null -> NaN needs a float
    values = pc.fill_null(values, fill).to_numpy(zero_copy_only=False).astype(dtype)
    return [values[offsets[i] : offsets[i + 1]] for i in range(len(column))]


def _fit(x: np.ndarray, n: int, fill: float | bool) -> np.ndarray:
    """Cut or pad an array to n (clean guarantees equal lengths; this keeps bad input alive)."""
    if len(x) == n:
        return x
    if len(x) > n:
        return x[:n]
    return np.concatenate((x, np.full(n - len(x), fill, dtype=x.dtype)))


@dataclass
class FeaturizedBatch:
    features: np.ndarray  # [R, T, F] float32
    target: np.ndarray  # [R, T] float32
    mask: np.ndarray  # [R, T] bool
    elapsed: np.ndarray  # [R, T] float32
    index: pd.DataFrame  # one line per row: ids, start_time, length, reporting descriptors


def _column(batch: pa.RecordBatch, name: str, default: Any, n: int) -> list[Any]:
    if name in batch.schema.names:
        return batch.column(name).to_pylist()
    return [default] * n


def featurize_batch(
    batch: pa.RecordBatch, names: Sequence[str], seq_len: int, mode: str
) -> FeaturizedBatch:
    """Featurize every workout of a clean record batch; rows keep the batch order."""
    n_work = batch.num_rows
    ts = _split_lists(batch.column("timestamp"), np.nan, np.float64)
    speed = _split_lists(batch.column("speed"), np.nan, np.float64)
    alt = _split_lists(batch.column("altitude"), np.nan, np.float64)
    hr = _split_lists(batch.column("heart_rate"), np.nan, np.float64)
    if "hr_valid" in batch.schema.names:
        hr_valid = _split_lists(batch.column("hr_valid"), False, bool)
    else:
        hr_valid = [np.ones(len(t), dtype=bool) for t in ts]
    wid = _column(batch, "workout_id", -1, n_work)
    uid = _column(batch, "user_id", -1, n_work)
    line = _column(batch, "line", -1, n_work)
    sport = _column(batch, "sport", "", n_work)
    gender = _column(batch, "gender", "unknown", n_work)
    source = _column(batch, "speed_source", "", n_work)
    fault = _column(batch, "fault", "", n_work)
    correction = _column(batch, "correction", "", n_work)
    leaky = needs_hr(names)

    feats, targets, masks, elapsed, index = [], [], [], [], []
    for i in range(n_work):
        n = len(ts[i])  # the timestamp list defines the workout's length
        mismatch = any(len(a[i]) != n for a in (speed, alt, hr, hr_valid))
        inputs = WorkoutInputs(ts[i], _fit(speed[i], n, np.nan), _fit(alt[i], n, np.nan),
                               gender[i] or "unknown")  # fmt: skip
        y = _fit(hr[i], n, np.nan)
        f = compute_features(names, inputs, hr=y if leaky else None)
        el = ts[i] - ts[i][0] if n else ts[i]
        wins, fr, yr, mr, er = pack_rows(f, y, _fit(hr_valid[i], n, False), el, seq_len, mode)
        dt = np.maximum(np.diff(ts[i]), 0.0) if n > 1 else np.zeros(0)
        sp = inputs.speed_kmh
        gain = float(np.nansum(np.maximum(np.diff(inputs.altitude_m), 0.0))) if n > 1 else 0.0
        for k, (w, m) in enumerate(zip(wins, mr, strict=True)):
            index.append(
                {
                    "workout_id": wid[i],
                    "user_id": uid[i],
                    "start_time": int(ts[i][0]) if n and np.isfinite(ts[i][0]) else -1,
                    "length": w.length,
                    "window": k,  # 0.. within the workout (windows mode)
                    "offset": w.start,
                    "n_valid": int(m.sum()),
                    "workout_steps": n,
                    "line": line[i],
                    "sport": sport[i] or "",
                    "gender": gender[i] or "unknown",
                    "speed_source": source[i] or "",
                    "duration_s": float(ts[i][-1] - ts[i][0]) if n else 0.0,
                    "distance_km": float(np.nansum(sp[1:] / 3.6 * dt) / 1000.0) if n > 1 else 0.0,
                    "mean_speed_kmh": float(np.nanmean(sp)) if n and np.isfinite(sp).any() else 0.0,
                    "elevation_gain_m": gain,
                    "length_mismatch": mismatch,
                    "fault": fault[i] or "",
                    "correction": correction[i] or "",
                }
            )
        feats.append(fr)
        targets.append(yr)
        masks.append(mr)
        elapsed.append(er)
    n_feat = len(names) if not feats else feats[0].shape[2]
    if not feats:
        empty = np.zeros((0, seq_len), dtype=np.float32)
        return FeaturizedBatch(np.zeros((0, seq_len, n_feat), np.float32), empty,
                               empty.astype(bool), empty, pd.DataFrame(index))  # fmt: skip
    return FeaturizedBatch(
        np.concatenate(feats), np.concatenate(targets), np.concatenate(masks),
        np.concatenate(elapsed), pd.DataFrame(index),
    )  # fmt: skip
