"""data/eval/: the saved predictions every headline figure recomputes from (the contract's owner).

`predictions.parquet`: one line per real (non-padding) step of every val and test row:
`row, workout_id, split, step, t` (s since start), `hr_true` (the recorded, cleaned HR),
`valid` (scored step), `hr_cold` (the population prediction), `hr_offset`, `hr_learned`,
`hr_personal` (the headline: the model's personal prediction), `hr_p10`/`hr_p90` (its
calibrated band; nan for a population model). float32.

`workouts.parquet`: one line per val and test workout: `workout_id, user_id, split`,
`n_history` (earlier workouts in the history table) and its `bucket`, `n_used` (the earlier
runs the plan used: those after the latest level change) and its `band_bucket`, `change`
(a level change was found), `change_shift_bpm`, `offset_bpm`, `residual_bpm`,
`runner_factor`, the headline weights `w_population, w_offset, w_learned`, `n_valid` (scored
steps), `n_covered` (of them inside the band), `mae_cold, mae_offset, mae_learned,
mae_personal`, the workout average `avg_true`, `avg_personal` and its band `avg_lo, avg_hi`,
and `runs_after_change` (the simulator's truth, measurement only: the how-many-th run after a
level change, 0 none, -1 unknown).

`recompute_test` rebuilds metrics/evaluate.json's headline test figures from these two files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hrpred.evaluate.results import PersonalResult
from hrpred.split.history import history_buckets
from hrpred.store import Dataset, read_rows
from hrpred.uncertainty import Band

CURVE_COLUMNS = {
    "cold": "hr_cold",
    "offset": "hr_offset",
    "learned": "hr_learned",
    "headline": "hr_personal",
}
BLOCK_ROWS = 256


def write_predictions(path: Path, ds: Dataset, res: PersonalResult, band: Band | None) -> None:
    """predictions.parquet (see the module doc), written block by block."""
    writer = None
    ids = ds.data.index["workout_id"].to_numpy()
    try:
        for start in range(0, len(res.rows), BLOCK_ROWS):
            sl = slice(start, start + BLOCK_ROWS)
            rows = res.rows[sl]
            length = ds.data.lengths(rows)
            ri, step = np.nonzero(np.arange(ds.data.seq_len)[None, :] < length[:, None])
            cols: dict[str, Any] = {
                "row": rows[ri].astype(np.int64),
                "workout_id": ids[rows][ri].astype(np.int64),
                "split": res.split[sl][ri],
                "step": step.astype(np.int32),
                "t": read_rows(ds.data.elapsed, rows)[ri, step].astype(np.float32),
                "hr_true": read_rows(ds.data.target, rows)[ri, step].astype(np.float32),
                "valid": np.asarray(read_rows(ds.data.mask, rows), bool)[ri, step],
            }
            for curve, col in CURVE_COLUMNS.items():
                cols[col] = res.curves[curve][sl][ri, step].astype(np.float32)
            for col, arr in (("hr_p10", None if band is None else band.lower),
                             ("hr_p90", None if band is None else band.upper)):  # fmt: skip
                cols[col] = (
                    np.full(len(ri), np.nan, np.float32)
                    if arr is None
                    else arr[sl][ri, step].astype(np.float32)
                )
            table = pa.Table.from_pandas(pd.DataFrame(cols), preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def workout_table(
    ds: Dataset,
    res: PersonalResult,
    band: Band | None,
    runs_after_change: np.ndarray | None = None,
) -> pd.DataFrame:
    """workouts.parquet's content (see the module doc); `runs_after_change` per TEST row."""
    index = ds.data.index
    y = np.asarray(read_rows(ds.data.target, res.rows), np.float64)
    v = np.asarray(read_rows(ds.data.mask, res.rows), bool)
    n = v.sum(axis=1)
    plans = res.plans
    frame: dict[str, Any] = {
        "workout_id": index["workout_id"].to_numpy()[res.rows],
        "user_id": index["user_id"].to_numpy()[res.rows],
        "split": res.split,
        "n_history": res.sizes,
        "n_used": res.used(),
        "change": np.array([p.change.found for p in plans]),
        "change_shift_bpm": np.array([p.change.shift_bpm for p in plans]),
        "offset_bpm": np.array([p.offset for p in plans]),
        "residual_bpm": np.array([p.residual for p in plans]),
        "runner_factor": res.factors(),
        **{
            f"w_{k}": np.array([p.weights[i] for p in plans])
            for i, k in enumerate(("population", "offset", "learned"))
        },  # fmt: skip
        "n_valid": n,
        "s_true": np.where(v, y, 0.0).sum(axis=1),
    }
    for curve in CURVE_COLUMNS:
        c = np.asarray(res.curves[curve], np.float64)
        frame[f"a_{curve}"] = np.where(v, np.abs(c - y), 0.0).sum(axis=1)
        if curve == "headline":
            frame["s_personal"] = np.where(v, c, 0.0).sum(axis=1)
    if band is not None:
        frame["n_covered"] = ((y >= band.lower) & (y <= band.upper) & v).sum(axis=1)
        frame["s_width"] = np.where(v, band.upper - band.lower, 0.0).sum(axis=1)
        half = (band.average_upper - band.average_lower) / 2.0
        frame["h_avg"] = np.where(np.isfinite(half), half, 0.0) * n
    raf = np.full(len(res.rows), -1, np.int64)
    if runs_after_change is not None:
        raf[res.take("test")] = runs_after_change
    frame["runs_after_change"] = raf
    per_row = pd.DataFrame(frame)
    keys = ["workout_id", "user_id", "split"]
    first = per_row.groupby(keys, sort=False).first()
    summed = per_row.groupby(keys, sort=False)[
        [
            c
            for c in per_row.columns
            if c.startswith(("a_", "s_", "h_")) or c in ("n_valid", "n_covered")
        ]
    ].sum()
    out = first.drop(columns=summed.columns).join(summed).reset_index()
    nv = out["n_valid"].where(out["n_valid"] > 0)
    for curve in CURVE_COLUMNS:
        out[f"mae_{curve if curve != 'headline' else 'personal'}"] = out.pop(f"a_{curve}") / nv
    out["avg_true"] = out.pop("s_true") / nv
    out["avg_personal"] = out.pop("s_personal") / nv
    if band is not None:
        half = out.pop("h_avg") / nv
        out["avg_lo"], out["avg_hi"] = out["avg_personal"] - half, out["avg_personal"] + half
        out["band_width_bpm"] = out.pop("s_width") / nv
    else:
        out["n_covered"] = 0
        out["avg_lo"] = out["avg_hi"] = out["band_width_bpm"] = np.nan
    out["bucket"] = history_buckets(out["n_history"].to_numpy())
    out["band_bucket"] = history_buckets(out["n_used"].to_numpy())
    return out


def write_workouts(path: Path, table: pd.DataFrame) -> None:
    table.to_parquet(path, index=False)


def recompute_test(predictions: pd.DataFrame, workouts: pd.DataFrame) -> dict[str, Any]:
    """The test figures of metrics/evaluate.json recomputed from the saved files: MAE and RMSE
    of each curve (global, over valid steps), band coverage and width, workout-average band
    coverage, and per history bucket the personal and cold MAE."""
    p = predictions[(predictions["split"] == "test") & predictions["valid"]]
    y = p["hr_true"].to_numpy(np.float64)
    out: dict[str, Any] = {}
    for curve, col in CURVE_COLUMNS.items():
        err = p[col].to_numpy(np.float64) - y
        out[curve] = {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err**2).mean()))}
    lo, hi = p["hr_p10"].to_numpy(np.float64), p["hr_p90"].to_numpy(np.float64)
    out["band"] = {
        "coverage": float(((y >= lo) & (y <= hi)).mean()),
        "width_bpm": float((hi - lo).mean()),
    }
    w = workouts[(workouts["split"] == "test") & (workouts["n_valid"] > 0)]
    inside = (w["avg_true"] >= w["avg_lo"]) & (w["avg_true"] <= w["avg_hi"])
    out["band"]["workout_avg_coverage"] = float(inside.mean())
    out["by_history"] = {}
    for b, g in w.groupby("bucket"):
        n = g["n_valid"].sum()
        out["by_history"][b] = {
            "n_workouts": int(len(g)),
            "personal_mae": float((g["mae_personal"] * g["n_valid"]).sum() / n),
            "cold_mae": float((g["mae_cold"] * g["n_valid"]).sum() / n),
        }
    return out
