"""Serialise simulated workouts as FitRec lines and stream the truth table to Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

_OPT = orjson.OPT_SERIALIZE_NUMPY

TRUTH_SCHEMA = pa.schema(
    [
        ("line", pa.int64()),
        ("workout_id", pa.int64()),
        ("user_id", pa.int64()),
        ("sport", pa.string()),
        ("archetype", pa.string()),
        ("terrain", pa.string()),
        ("fault", pa.string()),
        ("fault_start", pa.int64()),
        ("fault_end", pa.int64()),
        ("offset_bpm", pa.float64()),
        ("fault_bad_points", pa.int64()),  # recorded HR >= faults.BAD_POINT_BPM off the heart
        ("fault_visible", pa.bool_()),  # a fault a person would see (faults.fault_visible)
        ("confounder", pa.string()),  # fault-free physiology like a fault (confounders.py)
        ("age", pa.float64()),
        ("rest_hr", pa.float64()),
        ("max_hr", pa.float64()),
        ("threshold_speed_kmh", pa.float64()),
        ("tau_up_s", pa.float64()),
        ("tau_down_s", pa.float64()),
        ("drift_bpm_per_h", pa.float64()),
        ("gender", pa.string()),
        ("n_user_workouts", pa.int64()),
        ("level_bpm", pa.float64()),
        ("day", pa.float64()),
        ("change_day", pa.float64()),
        ("change_bpm", pa.float64()),
        ("hr_physio", pa.list_(pa.float64())),
        ("hr_clean", pa.list_(pa.float64())),
        ("pause_step", pa.list_(pa.int64())),
        ("pause_s", pa.list_(pa.float64())),
    ]
)


def _numbers(values: np.ndarray) -> bytes:
    # orjson prints shortest round-trip numbers Python reads back exactly; add the
    # spaces Python's repr puts after commas so lines look like the real file.
    return orjson.dumps(np.ascontiguousarray(values), option=_OPT).replace(b",", b", ")


def fitrec_line_bytes(workout: dict[str, Any]) -> bytes:
    """A FitRec Python-literal line (no newline) from numpy arrays and plain scalars.

    Strings must not contain quotes or backslashes (true for simulated values); the
    general-purpose writer is `hrpred.io.raw.write_fitrec_line`.
    """
    parts = []
    for key, value in workout.items():
        if isinstance(value, np.ndarray):
            text = _numbers(value)
        elif isinstance(value, str):
            text = b"'" + value.encode() + b"'"
        else:
            text = str(int(value)).encode()
        parts.append(b"'" + key.encode() + b"': " + text)
    return b"{" + b", ".join(parts) + b"}"


def truth_table(columns: dict[str, Any]) -> pa.Table:
    """Arrow table in TRUTH_SCHEMA from chunk columns ([B, n] arrays for the HR lists,
    lists of lists for the pause columns)."""
    arrays = []
    for field in TRUTH_SCHEMA:
        values = columns[field.name]
        if isinstance(values, list):
            arrays.append(pa.array(values, type=field.type))
        elif pa.types.is_list(field.type):
            values = np.asarray(values, dtype=np.float64)
            offsets = np.arange(values.shape[0] + 1, dtype=np.int32) * values.shape[1]
            arrays.append(pa.ListArray.from_arrays(pa.array(offsets), pa.array(values.ravel())))
        else:
            arrays.append(pa.array(np.asarray(values).tolist(), type=field.type))
    return pa.Table.from_arrays(arrays, schema=TRUTH_SCHEMA)


class TruthWriter:
    """Streams truth tables to a Parquet file, one row group per chunk."""

    def __init__(self, path: str | Path) -> None:
        self._writer = pq.ParquetWriter(
            path,
            TRUTH_SCHEMA,
            compression="zstd",
            compression_level=1,
            use_byte_stream_split=["hr_physio.list.element", "hr_clean.list.element"],
        )

    def write(self, columns: dict[str, Any]) -> None:
        self._writer.write_table(truth_table(columns))

    def close(self) -> None:
        self._writer.close()
