"""What metrics/evaluate.json and the plots say about personalisation (test split).

From the personalised rows (`hrpred.evaluate.personal`): error sums of each predictor (cold =
the population prediction, offset, learned, and the headline, which is the model's personal
prediction), the report entries per history bucket, the workouts right after a level change
(from the simulator's truth: measurement only), the share of runners that personalisation
made worse, the MAE-by-history plot data and the personalised example traces. The figures
measured on a few dozen runners (after a change, runners made worse, workouts with >=
MIN_RUNS_VS_CONSTANT earlier runs against the plain constant) carry a 90% interval over
redrawn test runners (`hrpred.uncertainty.runner_interval`, `evaluate.runner_resamples`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hrpred.evaluate.metrics import RowSums, row_sums, summarize_sums
from hrpred.evaluate.results import PersonalResult
from hrpred.split.history import BUCKETS, history_buckets
from hrpred.store import Dataset, read_rows
from hrpred.uncertainty import runner_interval

CURVES = ("cold", "offset", "learned", "headline")
MAX_PLOT_HISTORY = 10  # plots/mae_by_history.json: sizes 0..9 and "10 or more" (10)
AFTER_CHANGE_RUNS = 5  # the after-change bucket: the 1st..5th run after a level change ...
MIN_CHANGE_BPM = 5.0  # ... of at least this size (BPM)
LATE_AFTER_CHANGE = 3  # ... and from this run on
WORSE_RATIO = 1.1  # a runner made worse: personal MAE above this x their cold MAE
MIN_RUNS_VS_CONSTANT = 3  # test.history_3plus: workouts with at least this many earlier runs


@dataclass(frozen=True)
class Resampling:
    """Who the test rows belong to, and how their runners are redrawn for 90% intervals."""

    users: np.ndarray  # [test rows] runner of each row
    resamples: int  # evaluate.runner_resamples (0: no interval)
    seed: int  # evaluate.seed

    def ratio(self, num: RowSums, den: RowSums, sel: np.ndarray) -> dict[str, Any]:
        """{n_runners, ratio of the selected rows' absolute-error sums, its interval}."""
        lo, hi = runner_interval(
            num.abs_sum[sel], den.abs_sum[sel], self.users[sel], self.resamples, self.seed
        )
        total = float(den.abs_sum[sel].sum())
        return {
            "n_runners": int(len(np.unique(self.users[sel]))),
            "ratio": float(num.abs_sum[sel].sum()) / total if total > 0 else None,
            "runner_interval_90": [lo, hi],
        }


def runners_of_test_rows(ds: Dataset, res: PersonalResult) -> np.ndarray:
    """The runner of each test row (in `res.take("test")` order)."""
    return ds.data.index["user_id"].to_numpy()[res.rows[res.take("test")]]


def curve_sums(ds: Dataset, res: PersonalResult, split: str = "test") -> dict[str, RowSums]:
    """Error sums per row of `split` of each curve (CURVES)."""
    pos = res.take(split)
    rows = res.rows[pos]
    y = read_rows(ds.data.target, rows)
    v = np.asarray(read_rows(ds.data.mask, rows), bool)
    el = read_rows(ds.data.elapsed, rows)
    return {c: row_sums(y, res.curves[c][pos], v, el) for c in CURVES}


def _short(s: RowSums) -> dict[str, float | int]:
    m = summarize_sums(s)
    return {"n_workouts": m["n_workouts"], "mae": m["mae"], "rmse": m["rmse"]}


def entry(cold: RowSums, personal: RowSums, sizes: np.ndarray) -> dict[str, Any]:
    """`test` of one predictor: headline = personal, plus `cold`, `personal`, `by_history`."""
    labels = history_buckets(sizes)
    buckets = {
        b: {
            "n_workouts": int((labels == b).sum()),
            "cold": _short(cold.take(labels == b)),
            "personal": _short(personal.take(labels == b)),
        }
        for b in BUCKETS
    }
    return {
        **summarize_sums(personal),
        "cold": summarize_sums(cold),
        "personal": summarize_sums(personal),
        "by_history": buckets,
    }


def runs_after_change(
    ds: Dataset, res: PersonalResult, history: pd.DataFrame, truth: pd.DataFrame | None
) -> np.ndarray | None:
    """Per test row: the how-many-th run after the runner's latest true level change it is
    (1 = the first run after it; 0 = no change of at least MIN_CHANGE_BPM before it), from
    the simulator's truth of the test workouts (`day`, `change_day`, `change_bpm`: the
    workout's day in the runner's span, the day and size of the latest sudden level change
    at or before it; measurement only) and the history table (earlier runs started after the
    change: `days_before` within the days since it). None without that truth."""
    need = {"workout_id", "day", "change_day", "change_bpm"}
    if truth is None or not need <= set(truth.columns):
        return None
    t = truth.drop_duplicates("workout_id").set_index("workout_id")
    ids = ds.data.index["workout_id"].to_numpy()[res.rows[res.take("test")]]
    since = (t["day"] - t["change_day"]).reindex(ids).to_numpy(dtype=np.float64)
    size = np.abs(t["change_bpm"].reindex(ids).to_numpy(dtype=np.float64))
    h = history[history["workout_id"].isin(ids)]
    limit = pd.Series(since, index=ids).groupby(level=0).first()
    after = h["days_before"].to_numpy() < limit.reindex(h["workout_id"]).to_numpy()
    n = h[after].groupby("workout_id").size().reindex(ids, fill_value=0).to_numpy() + 1
    changed = np.isfinite(since) & (since >= 0) & (size >= MIN_CHANGE_BPM)
    return np.where(changed, n, 0).astype(np.int64)


def after_change(
    sums: dict[str, RowSums], runs_after: np.ndarray | None, draw: Resampling
) -> dict[str, Any] | None:
    """`test.after_change`: MAE of each curve on the 1st..AFTER_CHANGE_RUNS-th runs after a
    true level change, and from the LATE_AFTER_CHANGE-th on, with the personal / cold ratio
    and its interval over redrawn runners."""
    if runs_after is None:
        return None
    out: dict[str, Any] = {"runs": f"1-{AFTER_CHANGE_RUNS}", "late_from_run": LATE_AFTER_CHANGE}
    for name, sel in (
        ("all", (runs_after >= 1) & (runs_after <= AFTER_CHANGE_RUNS)),
        ("late", (runs_after >= LATE_AFTER_CHANGE) & (runs_after <= AFTER_CHANGE_RUNS)),
    ):
        maes = {c: summarize_sums(s.take(sel))["mae"] for c, s in sums.items()}
        ratio = draw.ratio(sums["headline"], sums["cold"], sel)
        out[name] = {
            "n_workouts": int(sel.sum()),
            "n_runners": ratio["n_runners"],
            **{f"{c}_mae": m for c, m in maes.items()},
            "personal_to_cold": ratio["ratio"],
            "personal_to_cold_runner_interval_90": ratio["runner_interval_90"],
        }
    return out


def made_worse(sums: dict[str, RowSums], draw: Resampling) -> dict[str, Any]:
    """`test.runners_made_worse`: the share of test runners whose personal MAE is more than
    WORSE_RATIO x their cold (population) MAE, over their test workouts, and its interval
    over redrawn runners."""
    frame = pd.DataFrame(
        {
            "u": draw.users,
            "n": sums["cold"].n,
            "c": sums["cold"].abs_sum,
            "p": sums["headline"].abs_sum,
        }
    )
    g = frame.groupby("u")[["n", "c", "p"]].sum()
    g = g[g["n"] > 0]
    worse = (g["p"] > WORSE_RATIO * g["c"]).to_numpy(np.float64)
    ones = np.ones(len(g))
    lo, hi = runner_interval(worse, ones, g.index.to_numpy(), draw.resamples, draw.seed)
    return {
        "ratio": WORSE_RATIO,
        "n_runners": int(len(g)),
        "share": float(worse.mean()) if len(g) else float("nan"),
        "share_runner_interval_90": [lo, hi],
    }


def history_vs_constant(
    headline: RowSums, constant: RowSums, sizes: np.ndarray, draw: Resampling
) -> dict[str, Any]:
    """`test.history_3plus`: the headline's MAE on the test workouts with at least
    MIN_RUNS_VS_CONSTANT earlier runs, over the plain constant's (the train-mean HR, no
    personalisation) on the same workouts, with its interval over redrawn runners."""
    sel = np.asarray(sizes) >= MIN_RUNS_VS_CONSTANT
    ratio = draw.ratio(headline, constant, sel)
    return {
        "min_earlier_runs": MIN_RUNS_VS_CONSTANT,
        "n_workouts": int(sel.sum()),
        "n_runners": ratio["n_runners"],
        "headline_mae": summarize_sums(headline.take(sel))["mae"],
        "constant_mae": summarize_sums(constant.take(sel))["mae"],
        "headline_to_constant": ratio["ratio"],
        "headline_to_constant_runner_interval_90": ratio["runner_interval_90"],
    }


def mae_by_history(workouts: pd.DataFrame) -> list[dict[str, float | int]]:
    """plots/mae_by_history.json from the saved per-workout table (test workouts): MAE of each
    curve per history size (10 = 10 or more)."""
    w = workouts[workouts["split"] == "test"]
    capped = np.minimum(w["n_history"].to_numpy(), MAX_PLOT_HISTORY)
    out = []
    for h in range(MAX_PLOT_HISTORY + 1):
        sel = w[capped == h]
        n = sel["n_valid"].sum()
        if not n:
            continue
        rec: dict[str, float | int] = {"history": h, "n_workouts": int(len(sel))}
        for c in CURVES:
            col = "mae_personal" if c == "headline" else f"mae_{c}"
            rec[c] = float((sel[col] * sel["n_valid"]).sum() / n)
        out.append(rec)
    return out


def personal_traces(
    ds: Dataset,
    res: PersonalResult,
    lower: np.ndarray,
    upper: np.ndarray,
    quantiles: tuple[float, ...],
    min_steps: int,
    gap_min: float = 5.0,
) -> list[dict[str, float | int]]:
    """plots/personal_traces.json: test workouts with >= 3 history at the `quantiles` of the
    personal MAE, back to back on one minute axis: recorded, cold and personal (headline) HR
    and its calibrated band (`lower`/`upper` of the test rows)."""
    pos = res.take("test")
    sums = curve_sums(ds, res)["headline"]
    wmae = sums.workout_mae()
    ok = np.flatnonzero((res.sizes[pos] >= 3) & (sums.n >= min_steps))
    if not len(ok):
        return []
    order = ok[np.argsort(wmae[ok], kind="stable")]
    picks = sorted({int(order[min(int(q * len(order)), len(order) - 1)]) for q in quantiles})
    out: list[dict[str, float | int]] = []
    offset = 0.0
    ids = ds.data.index["workout_id"].to_numpy()
    for p in picks:
        r = res.rows[pos[p] : pos[p] + 1]
        y = read_rows(ds.data.target, r)[0]
        v = np.asarray(read_rows(ds.data.mask, r)[0], dtype=bool)
        mins = read_rows(ds.data.elapsed, r)[0][v] / 60.0
        cold, head = res.curves["cold"][pos[p]][v], res.curves["headline"][pos[p]][v]
        lo, hi = lower[p][v], upper[p][v]
        for m, t, c, q, a, b in zip(mins, y[v], cold, head, lo, hi, strict=True):
            out.append({"minute": round(float(m) + offset, 3), "workout_id": int(ids[r[0]]),
                        "hr_true": round(float(t), 2), "hr_cold": round(float(c), 2),
                        "hr_personal": round(float(q), 2), "hr_p10": round(float(a), 2),
                        "hr_p90": round(float(b), 2)})  # fmt: skip
        offset += (float(mins.max()) if len(mins) else 0.0) + gap_min
    return out
