"""Per-user and per-detector summaries of the clean stage's decisions (from its report).

What cleaning costs each runner matters as much as the totals: a detector that throws out one
runner's steady runs biases the training data against exactly that runner. `summarise`
writes data/clean/users.parquet (one row per user: runs, rejected, masked, flagged; schema
`hrpred.clean.outputs.USERS_SCHEMA`) and returns the summary for metrics/clean.json: the
spread of the per-user shares, and the share of runs each detector flags.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hrpred.clean.config import FAULT_PRECEDENCE
from hrpred.clean.outputs import USERS_SCHEMA

# Report faults that are no sensor fault call.
NOT_FLAGGED = ("", "none", "benign")


def _spread(x: pd.Series) -> dict[str, float | None]:
    if x.empty:
        return {"mean": None, "median": None, "p90": None, "max": None}
    return {
        "mean": round(float(x.mean()), 4),
        "median": round(float(x.median()), 4),
        "p90": round(float(x.quantile(0.9)), 4),
        "max": round(float(x.max()), 4),
    }


def summarise(report_path: str | Path, users_path: str | Path) -> dict[str, Any]:
    """Write the per-user table and return {by_user, flagged_per_detector}.

    Over the workouts of the kept sports that reached a decision of the clean stage (a user
    id is known): `rejected` for any reason, `masked` = kept with HR samples masked,
    `flagged` = any fault found (kept or not). `flagged_per_detector`: the share of the runs
    that reached the detector on which each fault was found (a run can have several)."""
    cols = ["user_id", "decision", "reason", "fault", "faults", "correction"]
    r = pq.read_table(report_path, columns=cols).to_pandas()
    r = r[r["user_id"].notna() & (r["reason"] != "sport")]
    flagged = ~r["fault"].isin(NOT_FLAGGED)
    per = pd.DataFrame(
        {
            "user_id": r["user_id"].astype("int64"),
            "rejected": r["decision"] == "rejected",
            "masked": (r["decision"] == "kept") & (r["correction"] == "masked"),
            "flagged": flagged,
        }
    )
    g = per.groupby("user_id", sort=True)
    users = pd.DataFrame(
        {
            "runs": g.size(),
            "rejected": g["rejected"].sum(),
            "masked": g["masked"].sum(),
            "flagged": g["flagged"].sum(),
        }
    ).reset_index()
    for name in ("rejected", "masked", "flagged"):
        users[f"{name}_share"] = users[name] / users["runs"]
    table = pa.Table.from_pandas(users, schema=USERS_SCHEMA, preserve_index=False)
    pq.write_table(table, users_path, compression="zstd")
    reached = r[r["fault"] != ""]
    found = reached["faults"].str.split(",").explode()
    counts = found[found.isin(FAULT_PRECEDENCE)].value_counts()
    n = max(len(reached), 1)
    by_user: dict[str, Any] = {
        "users": int(len(users)),
        "runs_median": float(users["runs"].median()) if len(users) else None,
        "definition": "per user: share of their runs rejected, kept with HR masked, flagged "
        "(any fault found); data/clean/users.parquet has every user",
    }
    for name in ("rejected", "masked", "flagged"):
        by_user[f"{name}_share"] = _spread(users[f"{name}_share"])
    for limit in (0.1, 0.15):
        by_user[f"users_rejected_over_{limit:g}"] = int((users["rejected_share"] > limit).sum())
    return {
        "by_user": by_user,
        "flagged_per_detector": {
            "runs": int(len(reached)),
            **{f: round(float(counts.get(f, 0)) / n, 4) for f in FAULT_PRECEDENCE},
        },
        "flagged_any": round(float(np.mean(~reached["fault"].isin(NOT_FLAGGED))), 4)
        if len(reached)
        else None,
    }
