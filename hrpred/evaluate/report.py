"""metrics/evaluate.json: the report built from the scored splits (model, baselines,
comparison, input-only categories, noise floor, offset diagnostics, counts), and the example
traces the plots draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from hrpred.evaluate.metrics import summarize_sums
from hrpred.evaluate.plots import Example, Trace
from hrpred.evaluate.results import SplitResult
from hrpred.store import SPLITS, Dataset, read_rows


def _group_metrics(
    labels: Sequence[str], res: SplitResult, min_workouts: int = 1
) -> dict[str, dict[str, float | int]]:
    """Model (and baseline MAE) per label, over the workouts of each label."""
    labels = np.asarray(labels)
    out: dict[str, dict[str, float | int]] = {}
    for lab in sorted(set(labels.tolist())):
        sel = labels == lab
        if sel.sum() < min_workouts:
            continue
        s = summarize_sums(res.sums["model"].take(sel))
        entry: dict[str, float | int] = {
            "n_workouts": s["n_workouts"],
            "n_steps": s["n_steps"],
            "mae": s["mae"],
            "rmse": s["rmse"],
            "workout_mae_median": s["workout_mae_median"],
            "bias": s["bias"],
        }
        for name, sums in res.sums.items():
            if name != "model":
                entry[f"{name}_mae"] = summarize_sums(sums.take(sel))["mae"]
        out[lab] = entry
    return out


def archetype_agreement(
    ds: Dataset, rows: np.ndarray, categories: Sequence[str], truth: pd.DataFrame
) -> float | None:
    """Fraction of rows whose input-only category equals the simulator archetype (measurement)."""
    if not {"workout_id", "archetype"} <= set(truth.columns):
        return None
    arche = truth.drop_duplicates("workout_id").set_index("workout_id")["archetype"]
    ids = ds.data.index["workout_id"].to_numpy()[rows]
    known = np.isin(ids, arche.index.to_numpy())
    if not known.any():
        return None
    same = [c == arche.at[w] for c, w, k in zip(categories, ids, known, strict=True) if k]
    return float(np.mean(same))


def offset_diagnostics(res: SplitResult) -> dict[str, float]:
    """How much of the error is a constant offset per workout (e.g. the user's unknown HR level).

    `mae_workout_offset_removed`: MAE after subtracting each workout's mean error;
    `workout_bias_std`: spread of those per-workout mean errors (BPM).
    """
    s = res.sums["model"]
    has = s.n > 0
    if not has.any():
        return {"mae_workout_offset_removed": float("nan"), "workout_bias_std": float("nan")}
    bias_w = s.err_sum[has] / s.n[has]
    return {
        "mae_workout_offset_removed": res.resid_abs_sum / res.resid_n,
        "workout_bias_std": float(bias_w.std()),
    }


def build_report(
    ds: Dataset,
    results: dict[str, SplitResult],
    fitted: dict[str, dict[str, float]],
    categories: Sequence[str],
    truth: pd.DataFrame | None,
    entries: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """metrics/evaluate.json as a nested dict.

    Keys: test, val, baselines, comparison, categories, noise_floor, diagnostics, counts.
    `entries`: the `test` entry of "model" and of each name in `fitted` (the personalised
    score: headline mae/rmse... with `cold` (history ignored), `personal` and `by_history`
    (buckets 0, 1-2, 3-9, 10+); `offset` is the model's cold prediction + the offset
    personaliser, `learned` the network + residual correction). Val, categories and
    diagnostics are cold.
    """
    report: dict[str, Any] = {
        "test": entries["model"],
        "val": summarize_sums(results["val"].sums["model"]),
    }
    report["baselines"] = {}
    for name, params in fitted.items():
        entry = {"test": entries[name]}
        entry["val"] = summarize_sums(results["val"].sums.get(name, results["val"].sums["model"]))
        entry.update(params)
        report["baselines"][name] = entry

    def ratio(a: float, b: float) -> float:
        return a / b if b else float("nan")

    t = report["test"]
    report["comparison"] = {
        f"test_mae_ratio_to_{name}": ratio(t["mae"], b["test"]["mae"])
        for name, b in report["baselines"].items()
    }
    report["comparison"].update(
        {
            f"test_cold_mae_ratio_to_{name}": ratio(t["cold"]["mae"], b["test"]["cold"]["mae"])
            for name, b in report["baselines"].items()
            if name not in ("offset", "learned")
        }
    )
    test = results["test"]
    cats = {"input_only": _group_metrics(categories, test)}
    cats["report_only_hr_band"] = _group_metrics(test.bands, test)
    if truth is not None:
        agree = archetype_agreement(ds, test.rows, categories, truth)
        if agree is not None:
            cats["archetype_agreement"] = agree
    report["categories"] = cats
    floor = test.noise.result() if test.noise is not None else None
    report["noise_floor"] = floor if floor is not None else {"available": 0}
    if floor is not None:
        report["noise_floor"]["available"] = 1
    report["diagnostics"] = {f"test_{k}": v for k, v in offset_diagnostics(test).items()}
    report["counts"] = {f"{s}_workouts": int(len(ds.rows[s])) for s in SPLITS}
    return report


def workout_maes(res: SplitResult) -> np.ndarray:
    """Per-row MAE of the model (NaN where a row has no valid step)."""
    return res.sums["model"].workout_mae()


def split_traces(ds: Dataset, res: SplitResult, examples: Sequence[Example]) -> dict[int, Trace]:
    """{position: Trace} of the example rows of the test split (Example.row = position)."""
    if res.model is None:
        raise ValueError("the split was evaluated without keep_model")
    out = {}
    for ex in examples:
        r = res.rows[ex.row : ex.row + 1]
        out[ex.row] = Trace(
            np.asarray(read_rows(ds.data.target, r)[0], dtype=np.float64),
            np.asarray(res.model[ex.row], dtype=np.float64),
            np.asarray(read_rows(ds.data.mask, r)[0], dtype=bool),
            np.asarray(read_rows(ds.data.elapsed, r)[0], dtype=np.float64),
        )
    return out
