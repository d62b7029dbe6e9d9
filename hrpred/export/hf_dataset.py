"""The cleaned workouts as a Hugging Face-style dataset (`data/export/hf/`).

`train.parquet`, `validation.parquet`, `test.parquet`: one row per workout with list columns,
split exactly as `data/split/assignment.parquet` assigned it (its `split` column is kept:
train | val | test), plus a README.md dataset card with a YAML header (`configs` /
`data_files`) so `datasets.load_dataset(<dir>)` finds the three splits. Plain pyarrow/pandas
read the files too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hrpred.export.cards import block, fill
from hrpred.export.errors import ExportError

# data/split name -> file / Hugging Face split name
SPLIT_FILES = {"train": "train", "val": "validation", "test": "test"}

# Exported columns of data/clean/workouts.parquet, in this order, when present (`line` is the
# raw file's line number: provenance of this pipeline only).
EXPORT_COLUMNS = (
    "workout_id", "user_id", "sport", "gender", "timestamp", "speed", "speed_source",
    "altitude", "latitude", "longitude", "heart_rate", "heart_rate_raw", "hr_valid", "fault",
    "correction", "offset_bpm", "offset_start", "offset_end", "confidence",
)  # fmt: skip

COLUMN_DOCS = {
    "workout_id": "workout id (int64)",
    "user_id": "user id (int64); splits never share a user when the split is user-disjoint",
    "sport": "sport (string)",
    "gender": "male, female or unknown",
    "timestamp": "Unix seconds (list<int64>)",
    "speed": "speed in km/h (list<float64>), native or derived from GPS",
    "speed_source": "native or gps",
    "altitude": "altitude in m (list<float64>)",
    "latitude": "degrees (list<float64>, may be empty)",
    "longitude": "degrees (list<float64>, may be empty)",
    "heart_rate": "heart rate in BPM after correction (list<float64>): the model's target",
    "heart_rate_raw": "heart rate in BPM as recorded (list<float64>)",
    "hr_valid": "false on masked dropouts/spikes (list<bool>)",
    "fault": "sensor fault class found by the cleaner, or none",
    "correction": "none, offset_full, offset_partial, interpolated or masked",
    "offset_bpm": "BPM added by an offset correction (float64)",
    "offset_start": "first corrected step (-1 if none)",
    "offset_end": "end of the corrected steps (-1 if none)",
    "confidence": "confidence of the fault detection (float64)",
    "split": "train, val or test, exactly as data/split assigned it",
}


def workout_splits(assignment: pd.DataFrame) -> dict[int, str]:
    """workout_id -> split from the row assignment; a workout split across rows is an error."""
    per = assignment.groupby("workout_id")["split"].agg(lambda s: sorted(set(s)))
    mixed = per[per.map(len) > 1]
    if len(mixed):
        wid = int(mixed.index[0])
        raise ExportError(
            f"workout {wid} has rows in several splits {mixed.iloc[0]}: cannot export one split"
        )
    return {int(w): s[0] for w, s in per.items()}


@dataclass
class SplitCounts:
    workouts: int = 0
    users: set[int] = field(default_factory=set)
    steps: int = 0
    hours: float = 0.0


def _add_counts(c: SplitCounts, table: pa.Table) -> None:
    c.workouts += table.num_rows
    c.users.update(int(u) for u in table.column("user_id").to_numpy())
    ts = table.column("timestamp").combine_chunks()
    if not len(ts):
        return
    lengths = pc.fill_null(pc.list_value_length(ts), 0).to_numpy(zero_copy_only=False)
    offsets = ts.offsets.to_numpy()[:-1]
    values = ts.values.to_numpy(zero_copy_only=False).astype(np.float64)
    have = lengths > 0
    first = values[offsets[have]]
    last = values[offsets[have] + lengths[have] - 1]
    c.steps += int(lengths.sum())
    c.hours += float(np.sum(last - first)) / 3600.0


def export_hf(
    batches: Iterable[pa.RecordBatch],
    splits: Mapping[int, str],
    out_dir: Path,
) -> dict[str, Any]:
    """Stream clean record batches into the three split files; returns the counts.

    Workouts without a split (not featurized, or `dropped` by a chronological split) are not
    exported but counted.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    writers: dict[str, pq.ParquetWriter] = {}
    counts = {s: SplitCounts() for s in SPLIT_FILES}
    skipped: dict[str, int] = {}
    schema: pa.Schema | None = None
    for batch in batches:
        table = pa.Table.from_batches([batch])
        cols = [c for c in EXPORT_COLUMNS if c in table.column_names]
        table = table.select(cols)
        wids = table.column("workout_id").to_numpy()
        labels = np.array([splits.get(int(w), "unassigned") for w in wids], dtype=object)
        table = table.append_column("split", pa.array(labels.tolist(), type=pa.string()))
        if schema is None:
            schema = table.schema
            for name in SPLIT_FILES.values():
                writers[name] = pq.ParquetWriter(out_dir / f"{name}.parquet", schema)
        for label in set(labels) - set(SPLIT_FILES):
            skipped[label] = skipped.get(label, 0) + int(np.sum(labels == label))
        for split, name in SPLIT_FILES.items():
            part = table.filter(pa.array(labels == split))
            if part.num_rows:
                writers[name].write_table(part.cast(schema))
                _add_counts(counts[split], part)
    if schema is None:
        raise ExportError("the clean workouts file has no rows: nothing to export")
    for w in writers.values():
        w.close()
    return {
        "splits": {
            s: {
                "workouts": c.workouts,
                "users": len(c.users),
                "steps": c.steps,
                "hours": round(c.hours, 2),
            }
            for s, c in counts.items()
        },
        "not_exported": dict(sorted(skipped.items())),
        "user_overlap": _overlap(counts),
        "columns": [f.name for f in schema],
    }


def _overlap(counts: Mapping[str, SplitCounts]) -> int:
    """Users that appear in more than one split."""
    seen: dict[int, int] = {}
    for c in counts.values():
        for u in c.users:
            seen[u] = seen.get(u, 0) + 1
    return sum(1 for n in seen.values() if n > 1)


def split_facts(assignment: pd.DataFrame, source: str) -> dict[str, Any]:
    """The bundle's `data` entry: source, protocol (user overlap) and per-split counts."""
    split = assignment["split"].to_numpy()
    users = {s: set(assignment.loc[split == s, "user_id"]) for s in SPLIT_FILES}
    overlap = len(
        (users["train"] & users["val"])
        | (users["train"] & users["test"])
        | (users["val"] & users["test"])
    )
    return {
        "source": source,
        "protocol": protocol_text(overlap),
        "splits": {
            s: {
                "workouts": int(assignment.loc[split == s, "workout_id"].nunique()),
                "users": len(users[s]),
                "rows": int(np.sum(split == s)),
            }
            for s in SPLIT_FILES
        },
    }


def protocol_text(user_overlap: int) -> str:
    """How the split relates users to splits, from the data itself."""
    if user_overlap == 0:
        return "user-disjoint: no user appears in more than one split (test = unseen users)"
    return (
        f"not user-disjoint: {user_overlap} users appear in several splits (per-user "
        "chronological split: test workouts are later workouts of users seen in training)"
    )


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if n < limit:
            return label
    return "100K<n<1M"


def render_dataset_card(summary: Mapping[str, Any], source: str, license_id: str) -> str:
    """README.md for data/export/hf with the real counts (templates/dataset_card.md)."""
    splits = summary["splits"]
    total = sum(s["workouts"] for s in splits.values())
    rows = [
        f"| {split} | {name}.parquet | {c['workouts']} | {c['users']} | {c['steps']} | "
        f"{c['hours']:.2f} |"
        for split, name in SPLIT_FILES.items()
        for c in [splits[split]]
    ]
    rows.append(
        f"| total | | {total} | {sum(c['users'] for c in splits.values())} | "
        f"{sum(c['steps'] for c in splits.values())} | "
        f"{sum(c['hours'] for c in splits.values()):.2f} |"
    )
    skipped = summary.get("not_exported", {})
    parts = ", ".join(f"{n} {k}" for k, n in skipped.items())
    return fill(
        "dataset_card.md",
        license_id=license_id,
        size_category=_size_category(total),
        data_files=block(
            [
                line
                for name in SPLIT_FILES.values()
                for line in (f"  - split: {name}", f"    path: {name}.parquet")
            ]
        ),
        source=source,
        protocol=protocol_text(summary["user_overlap"]),
        split_rows="\n".join(rows),
        not_exported=block(["", f"Cleaned workouts not in any split file: {parts}."])
        if skipped
        else "",
        column_rows="\n".join(
            f"| {col} | {COLUMN_DOCS.get(col, '')} |" for col in summary["columns"]
        ),
    )
