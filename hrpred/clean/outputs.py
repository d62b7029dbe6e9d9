"""The clean stage's outputs: data/clean/{workouts,rejects,report,users}.parquet.

The schemas are the contract with featurize (workouts) and with the detection metrics
(report); `BatchWriter` groups the small per-chunk batches into row groups.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

_F64 = pa.list_(pa.float64())
WORKOUTS_SCHEMA = pa.schema(
    [
        ("workout_id", pa.int64()),
        ("user_id", pa.int64()),
        ("line", pa.int64()),
        ("sport", pa.string()),
        ("gender", pa.string()),
        ("timestamp", pa.list_(pa.int64())),
        ("speed", _F64),
        ("speed_source", pa.string()),
        ("altitude", _F64),
        ("latitude", _F64),
        ("longitude", _F64),
        ("heart_rate", _F64),
        ("heart_rate_raw", _F64),
        ("hr_valid", pa.list_(pa.bool_())),
        ("fault", pa.string()),
        ("correction", pa.string()),
        ("offset_bpm", pa.float64()),
        ("offset_start", pa.int64()),
        ("offset_end", pa.int64()),
        ("confidence", pa.float64()),
        ("pause_step", pa.list_(pa.int64())),  # first sample after each pause (gap kept)
        ("pause_s", _F64),  # each pause's length (s): the gap step's length
    ]
)
REJECTS_SCHEMA = pa.schema(
    [
        ("line", pa.int64()),
        ("workout_id", pa.int64()),
        ("reason", pa.string()),
        ("detail", pa.string()),
    ]
)
USERS_NAME = "users.parquet"  # in the clean directory: one row per user (clean/summary.py)
USERS_SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("runs", pa.int64()),  # workouts of the kept sports that reached a decision
        ("rejected", pa.int64()),
        ("masked", pa.int64()),  # kept with HR samples masked
        ("flagged", pa.int64()),  # any fault found
        ("rejected_share", pa.float64()),
        ("masked_share", pa.float64()),
        ("flagged_share", pa.float64()),
    ]
)
REPORT_SCHEMA = pa.schema(
    [
        ("line", pa.int64()),
        ("workout_id", pa.int64()),
        ("user_id", pa.int64()),
        ("sport", pa.string()),
        ("decision", pa.string()),  # kept | rejected
        ("reason", pa.string()),  # reject reason ("" when kept)
        ("fault", pa.string()),  # primary detector class (none | benign | fault), "" if not run
        ("faults", pa.string()),  # every fault found, comma-separated
        ("flags", pa.string()),  # rule flags that fired, comma-separated
        ("correction", pa.string()),
        ("offset_bpm", pa.float64()),
        ("offset_start", pa.int64()),
        ("offset_end", pa.int64()),
        ("confidence", pa.float64()),
        ("deficit_bpm", pa.float64()),  # expected minus observed level (BPM)
        ("level_k", pa.int64()),  # user's other workouts behind the level model
        ("segment_score", pa.float64()),
        ("speed_source", pa.string()),
        ("n_invalid", pa.int64()),  # HR samples masked
        ("n_pauses", pa.int64()),  # gaps kept as pauses (0 when rejected before judging)
        ("detail", pa.string()),
    ]
)
ROW_GROUP_ROWS = 1024


def list_column(arrays: list[np.ndarray], typ: pa.DataType) -> pa.Array:
    """A Parquet list column from per-row numpy arrays, built without Python per-value
    objects (flat values + offsets)."""
    value_type = typ.value_type
    np_type = {pa.int64(): np.int64, pa.float64(): np.float64, pa.bool_(): np.bool_}[value_type]
    lengths = np.array([a.size for a in arrays], dtype=np.int32)
    offsets = np.concatenate(([0], np.cumsum(lengths, dtype=np.int64))).astype(np.int32)
    flat = np.concatenate(arrays).astype(np_type) if arrays else np.empty(0, np_type)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(flat, value_type))


def report_row(**kw: Any) -> dict[str, Any]:
    """A report row: `kw` over the defaults of a rejected, undetected line."""
    row: dict[str, Any] = {
        "workout_id": None,
        "user_id": None,
        "sport": "",
        "decision": "rejected",
        "reason": "",
        "fault": "",
        "faults": "",
        "flags": "",
        "correction": "none",
        "offset_bpm": 0.0,
        "offset_start": -1,
        "offset_end": -1,
        "confidence": float("nan"),
        "deficit_bpm": float("nan"),
        "level_k": -1,
        "segment_score": float("nan"),
        "speed_source": "",
        "n_invalid": 0,
        "n_pauses": 0,
        "detail": "",
    }
    row.update(kw)
    return row


class BatchWriter:
    """ParquetWriter that groups small batches into row groups of ~ROW_GROUP_ROWS rows."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.writer = pq.ParquetWriter(path, schema, compression="zstd")
        self.schema = schema
        self.pending: list[pa.RecordBatch] = []
        self.rows = 0

    def add(self, batch: pa.RecordBatch | None) -> None:
        if batch is None or batch.num_rows == 0:
            return
        self.pending.append(batch)
        self.rows += batch.num_rows
        if self.rows >= ROW_GROUP_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.writer.write_table(pa.Table.from_batches(self.pending, schema=self.schema))
            self.pending, self.rows = [], 0

    def close(self) -> None:
        self.flush()
        self.writer.close()
