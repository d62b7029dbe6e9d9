"""What the evaluation reads: row chunks and feature columns of data/features (opened through
`hrpred.store`), the optional simulator truth, and the input-only category of each row.

Every reader works `batch_rows` rows at a time, so memory stays bounded at full scale.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hrpred.errors import HrpredError
from hrpred.evaluate.categories import CategoryRules, assign_all, describe_rows
from hrpred.progress import track
from hrpred.store import Dataset, read_rows

TRUTH_COLUMNS = (
    "workout_id", "archetype", "hr_clean", "hr_physio", "day", "change_day", "change_bpm"
)  # fmt: skip


class EvalInputError(HrpredError):
    """The evaluation inputs are missing or inconsistent (the message says what to rerun)."""


def chunks(rows: np.ndarray, batch_rows: int, desc: str) -> Iterator[tuple[int, np.ndarray]]:
    """(first position, rows) chunks of `rows`, with a progress bar."""
    for start in track(range(0, len(rows), batch_rows), desc, "chunks"):
        yield start, rows[start : start + batch_rows]


def feature_index(ds: Dataset, name: str) -> int:
    """Column of feature `name` (the physio baseline and the categories need speed/altitude)."""
    if name not in ds.data.names:
        raise EvalInputError(
            f"the physio baseline and the categories need the feature '{name}': "
            "add it to featurize.features"
        )
    return ds.data.names.index(name)


def feature_column(ds: Dataset, name: str, rows: np.ndarray, batch_rows: int = 1024) -> np.ndarray:
    """One feature column [len(rows), T] (float32, as stored), read chunk by chunk."""
    j = feature_index(ds, name)
    features = ds.data.features
    out = np.empty((len(rows), ds.data.seq_len), dtype=features.dtype)
    for start in range(0, len(rows), batch_rows):
        chunk = rows[start : start + batch_rows]
        out[start : start + len(chunk)] = read_rows(features, chunk)[:, :, j]
    return out


def count_valid(ds: Dataset, rows: np.ndarray, batch_rows: int) -> int:
    """Valid steps of `rows` (read chunk by chunk)."""
    return sum(
        int(np.asarray(read_rows(ds.data.mask, rows[s : s + batch_rows]), dtype=bool).sum())
        for s in range(0, len(rows), batch_rows)
    )


def fit_subsample(rows: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """At most `limit` of `rows` (seeded, kept in order): the baselines have a handful of
    parameters, and fitting them on whole full-scale train arrays in float64 costs GBs."""
    if limit <= 0 or len(rows) <= limit:
        return rows
    pick = np.random.default_rng(seed).choice(len(rows), size=limit, replace=False)
    return rows[np.sort(pick)]


def read_truth(path: Path, workout_ids: np.ndarray) -> pd.DataFrame | None:
    """Simulator truth (`TRUTH_COLUMNS` present) of `workout_ids`; None without workout_id.

    Read one row group at a time and filtered on the way: the HR lists of every simulated
    workout do not fit in memory at full scale (a filtered dataset scan buffers GBs too).
    """
    f = pq.ParquetFile(path)
    cols = [c for c in TRUTH_COLUMNS if c in f.schema_arrow.names]
    if "workout_id" not in cols:
        return None
    wanted = pa.array(np.unique(np.asarray(workout_ids, dtype=np.int64)))
    parts = []
    for i in range(f.num_row_groups):
        part = f.read_row_group(i, columns=cols)
        keep = pc.is_in(part.column("workout_id").cast(pa.int64()), value_set=wanted)
        parts.append(part.filter(keep))
    schema = f.schema_arrow
    table = pa.concat_tables(parts) if parts else schema.empty_table().select(cols)
    frame = table.to_pandas()  # the HR lists are views of the table's buffers
    del table, parts
    pa.default_memory_pool().release_unused()  # the unfiltered row groups' memory
    return frame


def optional_truth(path: Path | None, workout_ids: np.ndarray) -> pd.DataFrame | None:
    """Simulator truth of `workout_ids` for measurement only; None when absent or unreadable."""
    if path is None or not path.exists():
        return None
    try:
        return read_truth(path, workout_ids)
    except Exception as e:  # noqa: BLE001 - truth is optional: warn and go on
        print(f"evaluate: ignoring unreadable truth {path} ({e})", file=sys.stderr)
        return None


def input_categories(
    ds: Dataset, rows: np.ndarray, rules: CategoryRules, batch_rows: int = 1024
) -> list[str]:
    """Input-only category of each row (speed, altitude, elapsed; never HR).

    The easy rule's per-user reference speed uses every row of the same users (any split):
    only their inputs are read, `batch_rows` rows at a time.
    """
    index = ds.data.index
    users = index["user_id"].to_numpy() if "user_id" in index else None
    if users is None or rules.easy_reference != "user":
        ref_rows, ref_users = rows, None
    else:
        ref_rows = np.flatnonzero(np.isin(users, users[rows]))
        ref_users = users[ref_rows]
    speed_col = feature_index(ds, "speed")
    alt_col = feature_index(ds, "altitude")
    lengths = ds.data.lengths(ref_rows)
    desc: list[dict[str, float]] = []
    for start, chunk in chunks(ref_rows, batch_rows, "categories"):
        x = read_rows(ds.data.features, chunk)
        desc += describe_rows(
            np.asarray(x[:, :, speed_col], dtype=np.float64),
            np.asarray(x[:, :, alt_col], dtype=np.float64),
            np.asarray(read_rows(ds.data.elapsed, chunk), dtype=np.float64),
            lengths[start : start + len(chunk)],
            rules,
        )
    cats = assign_all(desc, rules, ref_users)
    by_row = dict(zip(ref_rows.tolist(), cats, strict=True))
    return [by_row[int(r)] for r in rows]
