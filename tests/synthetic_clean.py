"""Small synthetic `data/clean/workouts.parquet` tables in the clean contract's schema.

Used by the featurize/split tests (the clean stage is built separately).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema(
    [
        ("workout_id", pa.int64()), ("user_id", pa.int64()), ("line", pa.int64()),
        ("sport", pa.string()), ("gender", pa.string()),
        ("timestamp", pa.list_(pa.int64())), ("speed", pa.list_(pa.float64())),
        ("speed_source", pa.string()), ("altitude", pa.list_(pa.float64())),
        ("latitude", pa.list_(pa.float64())), ("longitude", pa.list_(pa.float64())),
        ("heart_rate", pa.list_(pa.float64())), ("heart_rate_raw", pa.list_(pa.float64())),
        ("hr_valid", pa.list_(pa.bool_())), ("fault", pa.string()), ("correction", pa.string()),
        ("offset_bpm", pa.float64()), ("offset_start", pa.int64()), ("offset_end", pa.int64()),
        ("confidence", pa.float64()),
    ]
)  # fmt: skip


def make_clean_rows(
    n_users: int = 12, seed: int = 0, lengths: tuple[int, int] = (40, 260)
) -> list[dict]:
    """Users with 1..15 workouts each, random lengths, a few masked HR steps."""
    rng = np.random.default_rng(seed)
    rows = []
    wid = 1000
    for u in range(n_users):
        uid = 7 + 13 * u
        gender = ("male", "female", "unknown")[u % 3]
        t0 = 1_400_000_000 + int(rng.integers(0, 10**6))
        for _ in range(int(rng.integers(1, 16))):
            n = int(rng.integers(*lengths))
            ts = t0 + np.cumsum(rng.integers(1, 12, n))
            speed = np.clip(9 + np.cumsum(rng.normal(0, 0.4, n)), 0, 25)
            alt = 100 + np.cumsum(rng.normal(0, 1.0, n))
            hr = 120 + 3 * speed + rng.normal(0, 2, n)
            valid = rng.random(n) > 0.05
            rows.append(
                {
                    "workout_id": wid, "user_id": uid, "line": len(rows) + 1, "sport": "run",
                    "gender": gender, "timestamp": ts.tolist(), "speed": speed.tolist(),
                    "speed_source": "native", "altitude": alt.tolist(),
                    "latitude": [], "longitude": [], "heart_rate": hr.tolist(),
                    "heart_rate_raw": hr.tolist(), "hr_valid": valid.tolist(), "fault": "none",
                    "correction": "none", "offset_bpm": 0.0, "offset_start": -1,
                    "offset_end": -1, "confidence": 1.0,
                }
            )  # fmt: skip
            wid += int(rng.integers(1, 5))
            t0 = int(ts[-1]) + int(rng.integers(3600, 5 * 86400))
    return rows


def write_clean(path: Path, rows: list[dict], row_group_size: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), path, row_group_size=row_group_size)
    return path
