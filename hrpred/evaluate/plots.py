"""Evaluation plot data: example choice and DVC plot records (plots/*.json).

The PNG figures and GIF animations drawn from them are in `hrpred.evaluate.figures`.

Examples are chosen by a representative rule (workouts near the 10th/50th/90th percentile of
per-workout MAE within each input-only category, a seeded pick inside a small rank window),
never by filtering out bad predictions. Every random choice takes a seed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Example:
    """One workout chosen to illustrate predictions."""

    row: int  # row of the [N, T] arrays
    workout_id: int
    category: str
    quantile: float  # target MAE quantile within the category (0.1, 0.5, 0.9)
    mae: float


def choose_examples(
    workout_mae: np.ndarray,
    categories: Sequence[str],
    workout_ids: Sequence[int],
    n_steps: np.ndarray,
    quantiles: Sequence[float],
    seed: int,
    window: float = 0.05,
    min_steps: int = 100,
) -> list[Example]:
    """Per category, a workout near each MAE quantile (seeded pick within +-window of rank).

    Only workouts with >= min_steps steps (`n_steps`: input length) are eligible, so that the
    traces are readable; falls back to all workouts of the category if none qualifies.
    Nothing is filtered on the size of the error.
    """
    rng = np.random.default_rng(seed)
    cats = np.asarray(categories)
    out: list[Example] = []
    for cat in sorted(set(categories)):
        idx = np.flatnonzero((cats == cat) & ~np.isnan(workout_mae))
        long_enough = idx[np.asarray(n_steps)[idx] >= min_steps]
        idx = long_enough if len(long_enough) else idx
        if len(idx) == 0:
            continue
        order = idx[np.argsort(workout_mae[idx], kind="stable")]
        n = len(order)
        for q in quantiles:
            centre = int(round(q * (n - 1)))
            lo = min(int(np.ceil(max(q - window, 0.0) * (n - 1))), centre)
            hi = max(int(np.floor(min(q + window, 1.0) * (n - 1))), centre)
            row = int(order[rng.integers(lo, hi + 1)])  # rank in [q - window, q + window]
            out.append(Example(row, int(workout_ids[row]), cat, float(q), float(workout_mae[row])))
    return out


def median_examples(examples: Sequence[Example]) -> list[Example]:
    """Per category, the example whose quantile is closest to the median (sorted by category)."""
    best: dict[str, Example] = {}
    for ex in examples:
        cur = best.get(ex.category)
        if cur is None or abs(ex.quantile - 0.5) < abs(cur.quantile - 0.5):
            best[ex.category] = ex
    return [best[c] for c in sorted(best)]


# ------------------------------------------------------------------ DVC plot data (JSON records)


ERROR_BIN_BPM = 2.0  # plots/error_hist.json bin width (BPM) ...
ERROR_RANGE_BPM = 50.0  # ... over +-this range; larger errors go to the end bins
FIG_ERROR_BINS = (60, 60.0)  # error_distribution.png histogram: bins over +-range (BPM)
CDF_BIN_BPM = 0.01  # resolution of the |error| CDF of error_distribution.png (BPM) ...
CDF_MAX_BPM = 300.0  # ... up to this |error|; larger ones are counted in the last bin


def _hist_edges(width: float, lo: float, hi: float) -> np.ndarray:
    return np.arange(lo, hi + width / 2, width)


def _hist_counts(values: np.ndarray, width: float, lo: float, hi: float) -> np.ndarray:
    """Counts per bin of `_hist_edges`; values outside [lo, hi] go to the end bins."""
    counts, _ = np.histogram(np.clip(values, lo, hi), bins=_hist_edges(width, lo, hi))
    return counts.astype(np.int64)


def _hist_records(counts: np.ndarray, width: float, lo: float, hi: float, key: str) -> list[dict]:
    """Bar records {key: bin centre, count}."""
    edges = _hist_edges(width, lo, hi)
    centres = (edges[:-1] + edges[1:]) / 2
    return [
        {key: round(float(c), 3), "count": int(n)} for c, n in zip(centres, counts, strict=True)
    ]


def _histogram(values: np.ndarray, width: float, lo: float, hi: float, key: str) -> list[dict]:
    """Bar records {key: bin centre, count}; values outside [lo, hi] go to the end bins."""
    return _hist_records(_hist_counts(values, width, lo, hi), width, lo, hi, key)


@dataclass
class Trace:
    """One workout's padded arrays (what the trace plots and animations draw)."""

    hr_true: np.ndarray
    hr_pred: np.ndarray
    valid: np.ndarray
    elapsed: np.ndarray
    band: tuple[np.ndarray, np.ndarray] | None = None  # the prediction's 80% band (lo, hi)


class PlotSums:
    """Step-level plot data of a split, accumulated chunk by chunk (bounded memory).

    `n_valid` (all valid steps of the split) must be known up front: the seeded scatter pick
    indexes the valid steps in row-major order, as if the whole split were one array. Chunks
    must be added in row order. Per-minute sums are added step by step in that order
    (np.add.at), so they equal one `np.bincount` over the whole split.
    """

    def __init__(
        self,
        n_valid: int,
        seed: int,
        n_scatter: int,
        error_bin_bpm: float = ERROR_BIN_BPM,
        error_range_bpm: float = ERROR_RANGE_BPM,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.pick = np.sort(rng.choice(n_valid, size=min(n_scatter, n_valid), replace=False))
        self.seen = 0
        self.scatter_true: list[np.ndarray] = []
        self.scatter_pred: list[np.ndarray] = []
        self.error_hist = (error_bin_bpm, -error_range_bpm, error_range_bpm)
        self.error_counts = np.zeros(len(_hist_edges(*self.error_hist)) - 1, dtype=np.int64)
        self.fig_bins, self.fig_range = FIG_ERROR_BINS
        self.fig_counts = np.zeros(self.fig_bins, dtype=np.int64)
        self.cdf_counts = np.zeros(int(round(CDF_MAX_BPM / CDF_BIN_BPM)) + 1, dtype=np.int64)
        self.abs_sum = 0.0
        self.minute_n = np.zeros(0, dtype=np.int64)
        self.minute_sum = np.zeros(0, dtype=np.float64)

    def add(
        self, hr_true: np.ndarray, hr_pred: np.ndarray, valid: np.ndarray, elapsed: np.ndarray
    ) -> None:
        """Add a chunk of rows [n, T] (the next rows of the split)."""
        valid = np.asarray(valid, dtype=bool)
        t_true = np.asarray(hr_true, dtype=np.float64)[valid]
        t_pred = np.asarray(hr_pred, dtype=np.float64)[valid]
        err = t_pred - t_true
        abs_err = np.abs(err)
        lo, hi = self.seen, self.seen + len(t_true)
        local = self.pick[(self.pick >= lo) & (self.pick < hi)] - lo
        self.scatter_true.append(t_true[local])
        self.scatter_pred.append(t_pred[local])
        self.seen = hi
        self.error_counts += _hist_counts(err, *self.error_hist)
        r = self.fig_range
        self.fig_counts += np.histogram(err, bins=self.fig_bins, range=(-r, r))[0]
        cdf_bin = np.minimum(abs_err / CDF_BIN_BPM, len(self.cdf_counts) - 1).astype(np.int64)
        self.cdf_counts += np.bincount(cdf_bin, minlength=len(self.cdf_counts))
        self.abs_sum += float(abs_err.sum())
        minute = np.floor(np.asarray(elapsed, dtype=np.float64)[valid] / 60.0).astype(np.int64)
        if minute.size:
            top = int(minute.max()) + 1
            if top > len(self.minute_n):
                grow = top - len(self.minute_n)
                self.minute_n = np.concatenate([self.minute_n, np.zeros(grow, np.int64)])
                self.minute_sum = np.concatenate([self.minute_sum, np.zeros(grow)])
            self.minute_n += np.bincount(minute, minlength=len(self.minute_n))
            np.add.at(self.minute_sum, minute, abs_err)  # sequential, like one bincount

    def scatter(self) -> list[dict]:
        """Records of the seeded subsample of valid steps."""
        t_true = np.concatenate([np.zeros(0), *self.scatter_true])
        t_pred = np.concatenate([np.zeros(0), *self.scatter_pred])
        return [
            {"hr_true": round(float(a), 1), "hr_pred": round(float(b), 1)}
            for a, b in zip(t_true, t_pred, strict=True)
        ]

    def mae_by_time(self, min_steps_per_minute: int = 20) -> list[dict]:
        """MAE per elapsed minute with enough steps."""
        n, s = self.minute_n, self.minute_sum
        out: list[dict] = []
        if not n.any():
            return out
        enough = n >= min_steps_per_minute
        if not enough.any():  # a tiny test set: show every minute rather than nothing
            enough = n > 0
        for m in np.flatnonzero(enough):
            out.append({"minute": int(m), "mae": round(float(s[m] / n[m]), 4)})
        return out

    def error_records(self) -> list[dict]:
        """Histogram records of the signed error."""
        return _hist_records(self.error_counts, *self.error_hist, "error_bpm")


def plot_records(
    sums: PlotSums,
    workout_mae: np.ndarray,
    examples: Sequence[Example],
    traces: dict[int, Trace],
    mae_bin_bpm: float = 1.0,
    min_steps_per_minute: int = 20,
    trace_gap_min: float = 5.0,
) -> dict[str, list[dict]]:
    """Records for plots/{scatter,error_hist,workout_mae_hist,mae_by_time,traces}.json."""
    wm = workout_mae[~np.isnan(workout_mae)]
    top = max(float(np.ceil(wm.max() / mae_bin_bpm) * mae_bin_bpm), mae_bin_bpm) if wm.size else 1
    # DVC's line templates cannot group by workout, so the median-MAE workout of each category
    # is laid out back to back on one time axis (`minute`), `trace_gap_min` apart.
    records = []
    offset = 0.0
    for ex in median_examples(examples):
        tr = traces[ex.row]
        m = tr.valid
        mins = np.asarray(tr.elapsed, dtype=np.float64)[m] / 60.0
        for mi, a, b in zip(mins, tr.hr_true[m], tr.hr_pred[m], strict=True):
            records.append(
                {
                    "minute": round(float(mi + offset), 3),
                    "workout_minute": round(float(mi), 3),
                    "hr_true": round(float(a), 1),
                    "hr_pred": round(float(b), 1),
                    "workout": f"{ex.category} #{ex.workout_id}",
                }
            )
        offset += (float(mins.max()) if len(mins) else 0.0) + trace_gap_min
    return {
        "scatter": sums.scatter(),
        "error_hist": sums.error_records(),
        "workout_mae_hist": _histogram(wm, mae_bin_bpm, 0.0, top, "mae_bpm"),
        "mae_by_time": sums.mae_by_time(min_steps_per_minute),
        "traces": records,
    }


def write_plot_data(data: dict[str, list[dict]], out_dir: Path) -> list[Path]:
    """Write each record list as plots/<name>.json (whole files, stable formatting)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, records in data.items():
        path = out_dir / f"{name}.json"
        path.write_text(json.dumps(records, separators=(",", ":")) + "\n")
        paths.append(path)
    return paths
