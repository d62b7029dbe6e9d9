"""The recompute check of an evaluated tree (issue 23): every figure of metrics/evaluate.json's
`test` block that the saved files can give recomputes from data/eval/predictions.parquet and
data/eval/workouts.parquet, both with `hrpred.evaluate.saved.recompute_test` and with the
independent pandas recomputation written here (from the saved steps, and the history table
for the history buckets).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from hrpred.evaluate.saved import recompute_test

TOLERANCE = 0.01  # BPM, or a share
COLUMNS = {"cold": "hr_cold", "offset": "hr_offset", "learned": "hr_learned",
           "headline": "hr_personal"}  # fmt: skip


def bucket(n: int) -> str:
    """The report's history bucket of `n` earlier workouts, by hand."""
    return "0" if n == 0 else "1-2" if n <= 2 else "3-9" if n <= 9 else "10+"


def pandas_figures(root: Path) -> dict[str, float]:
    """The test block's figures from the saved files, with pandas only (flat names as in
    metrics/evaluate.json)."""
    preds = pd.read_parquet(root / "data" / "eval" / "predictions.parquet")
    workouts = pd.read_parquet(root / "data" / "eval" / "workouts.parquet")
    history = pd.read_parquet(root / "data" / "split" / "history.parquet")
    steps = preds[(preds["split"] == "test") & preds["valid"]].copy()
    y = steps["hr_true"].astype("float64")
    out: dict[str, float] = {}
    for name, col in COLUMNS.items():
        err = steps[col].astype("float64") - y
        out[f"{name}.mae"], out[f"{name}.rmse"] = err.abs().mean(), np.sqrt((err**2).mean())
    lo, hi = steps["hr_p10"].astype("float64"), steps["hr_p90"].astype("float64")
    out["band.coverage"] = ((y >= lo) & (y <= hi)).mean()
    out["band.width_bpm"] = (hi - lo).mean()
    # the workout average: recorded and headline means from the steps, the band's ends saved
    per = steps.assign(y=y, p=steps["hr_personal"].astype("float64")).groupby("workout_id")
    avg = pd.DataFrame({"true": per["y"].mean(), "personal": per["p"].mean()})
    w = workouts[workouts["split"] == "test"].set_index("workout_id")
    avg = avg.join(w[["avg_true", "avg_personal", "avg_lo", "avg_hi"]])
    assert np.allclose(avg["true"], avg["avg_true"], atol=1e-3)
    assert np.allclose(avg["personal"], avg["avg_personal"], atol=1e-3)
    inside = (avg["true"] >= avg["avg_lo"]) & (avg["true"] <= avg["avg_hi"])
    out["band.workout_avg_coverage"] = inside.mean()
    # history buckets from the history table (earlier workouts listed per workout)
    sizes = history.groupby("workout_id").size()
    steps["bucket"] = [bucket(int(n)) for n in sizes.reindex(steps["workout_id"], fill_value=0)]
    for b, g in steps.groupby("bucket"):
        yy = g["hr_true"].astype("float64")
        for name, col in (("personal", "hr_personal"), ("cold", "hr_cold")):
            out[f"by_history.{b}.{name}.mae"] = (g[col].astype("float64") - yy).abs().mean()
    return {k: float(v) for k, v in out.items()}


def reported(metrics: dict[str, Any], has_learned: bool, has_band: bool) -> dict[str, float]:
    """The same figures as metrics/evaluate.json reports them."""
    t = metrics["test"]
    out = {"headline.mae": t["mae"], "headline.rmse": t["rmse"], "cold.mae": t["cold"]["mae"],
           "cold.rmse": t["cold"]["rmse"],
           "offset.mae": metrics["baselines"]["offset"]["test"]["mae"],
           "offset.rmse": metrics["baselines"]["offset"]["test"]["rmse"]}  # fmt: skip
    if has_learned:
        out["learned.mae"] = metrics["baselines"]["learned"]["test"]["mae"]
        out["learned.rmse"] = metrics["baselines"]["learned"]["test"]["rmse"]
    if has_band:
        for k in ("coverage", "width_bpm", "workout_avg_coverage"):
            out[f"band.{k}"] = t["band"][k]
    for b, e in t["by_history"].items():
        if e["n_workouts"]:
            out[f"by_history.{b}.personal.mae"] = e["personal"]["mae"]
            out[f"by_history.{b}.cold.mae"] = e["cold"]["mae"]
    return out


def from_recompute_test(root: Path) -> dict[str, float]:
    """The same figures by `hrpred.evaluate.saved.recompute_test`."""
    got = recompute_test(
        pd.read_parquet(root / "data" / "eval" / "predictions.parquet"),
        pd.read_parquet(root / "data" / "eval" / "workouts.parquet"),
    )
    out = {f"{c}.{m}": got[c][m] for c in COLUMNS for m in ("mae", "rmse")}
    out.update({f"band.{k}": v for k, v in got["band"].items()})
    for b, e in got["by_history"].items():
        out[f"by_history.{b}.personal.mae"] = e["personal_mae"]
        out[f"by_history.{b}.cold.mae"] = e["cold_mae"]
    return out


def assert_test_block_recomputes(root: Path, only: tuple[str, ...] | None = None,
                                 leave_out: tuple[str, ...] = ()) -> dict[str, float]:  # fmt: skip
    """Every reported test figure (or those named in `only`, less `leave_out`) within
    TOLERANCE of both recomputations (returns the reported figures checked)."""
    metrics = json.loads((root / "metrics" / "evaluate.json").read_text())
    has_learned = "learned" in metrics["baselines"]
    has_band = "band" in metrics["test"]
    want = reported(metrics, has_learned, has_band)
    if only is not None:
        assert set(only) <= set(want)
        want = {k: v for k, v in want.items() if k in only}
    want = {k: v for k, v in want.items() if k not in leave_out}
    assert only is not None or len([k for k in want if k.startswith("by_history")]) >= 4
    mine, theirs = pandas_figures(root), from_recompute_test(root)
    for key, value in want.items():
        assert mine[key] == pytest.approx(value, abs=TOLERANCE), ("pandas", key)
        assert theirs[key] == pytest.approx(value, abs=TOLERANCE), ("recompute_test", key)
    return want
