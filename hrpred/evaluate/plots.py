"""Evaluation plots: DVC plot data (JSON), PNG figures and GIF animations.

Examples are chosen by a representative rule (workouts near the 10th/50th/90th percentile of
per-workout MAE within each input-only category, a seeded pick inside a small rank window),
never by filtering out bad predictions. Every random choice takes a seed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: stages and tests run without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

TRUE_COLOR = "#2a9d8f"
PRED_COLOR = "#e76f51"


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


def example_traces(
    hr_true: np.ndarray,
    hr_pred: np.ndarray,
    valid: np.ndarray,
    elapsed: np.ndarray,
    examples: Sequence[Example],
) -> dict[int, Trace]:
    """{row: Trace} of the example rows of whole [N, T] arrays."""
    return {
        ex.row: Trace(
            np.asarray(hr_true[ex.row], dtype=np.float64),
            np.asarray(hr_pred[ex.row], dtype=np.float64),
            np.asarray(valid[ex.row], dtype=bool),
            np.asarray(elapsed[ex.row], dtype=np.float64),
        )
        for ex in examples
    }


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


def plot_data(
    hr_true: np.ndarray,
    hr_pred: np.ndarray,
    valid: np.ndarray,
    elapsed: np.ndarray,
    workout_mae: np.ndarray,
    examples: Sequence[Example],
    seed: int,
    n_scatter: int,
    error_bin_bpm: float = ERROR_BIN_BPM,
    error_range_bpm: float = ERROR_RANGE_BPM,
    mae_bin_bpm: float = 1.0,
    min_steps_per_minute: int = 20,
    trace_gap_min: float = 5.0,
) -> dict[str, list[dict]]:
    """`plot_records` of whole [N, T] arrays (a single chunk)."""
    valid = np.asarray(valid, dtype=bool)
    sums = PlotSums(int(valid.sum()), seed, n_scatter, error_bin_bpm, error_range_bpm)
    sums.add(hr_true, hr_pred, valid, elapsed)
    traces = example_traces(hr_true, hr_pred, valid, elapsed, examples)
    return plot_records(
        sums, workout_mae, examples, traces, mae_bin_bpm, min_steps_per_minute, trace_gap_min
    )


def write_plot_data(data: dict[str, list[dict]], out_dir: Path) -> list[Path]:
    """Write each record list as plots/<name>.json (whole files, stable formatting)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, records in data.items():
        path = out_dir / f"{name}.json"
        path.write_text(json.dumps(records, separators=(",", ":")) + "\n")
        paths.append(path)
    return paths


# ------------------------------------------------------------------------------- PNG figures


def _save(fig: plt.Figure, path: Path, dpi: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, metadata={"Software": None})  # no version string: stable bytes
    plt.close(fig)
    return path


def _trace(ax: plt.Axes, hr_true, hr_pred, valid, elapsed, title: str) -> None:
    mins = np.asarray(elapsed, dtype=np.float64) / 60.0
    truth = np.where(valid, hr_true, np.nan)  # gaps where HR is invalid, not interpolated lines
    ax.plot(mins, truth, color=TRUE_COLOR, lw=1.0, label="recorded")
    ax.plot(mins, np.where(valid, hr_pred, np.nan), color=PRED_COLOR, lw=1.0, label="predicted")
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=7)


def figures(
    sums: PlotSums,
    traces: dict[int, Trace],
    workout_mae: np.ndarray,
    examples: Sequence[Example],
    scatter: list[dict],
    model_maes: dict[str, float],
    out_dir: Path,
    dpi: int,
) -> list[Path]:
    """sample_predictions, error_distribution (+CDF), scatter, per_workout_mae, baselines.

    The error histogram and |error| CDF come from the counts in `sums` (bounded memory).
    """
    paths = []

    cats = sorted({e.category for e in examples})
    qs = sorted({e.quantile for e in examples})
    if cats:
        fig, axes = plt.subplots(
            len(cats), len(qs), figsize=(3.2 * len(qs), 2.2 * len(cats)), squeeze=False
        )
        for ax in axes.flat:
            ax.set_visible(False)
        for ex in examples:
            ax = axes[cats.index(ex.category), qs.index(ex.quantile)]
            ax.set_visible(True)
            tr = traces[ex.row]
            title = f"{ex.category} p{ex.quantile * 100:.0f} #{ex.workout_id} MAE {ex.mae:.1f}"
            _trace(ax, tr.hr_true, tr.hr_pred, tr.valid, tr.elapsed, title)
        axes.flat[0].legend(fontsize=7)
        fig.supxlabel("elapsed (min)", fontsize=8)
        fig.supylabel("HR (BPM)", fontsize=8)
        fig.tight_layout()
        paths.append(_save(fig, out_dir / "sample_predictions.png", dpi))

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    r = sums.fig_range
    edges = np.linspace(-r, r, sums.fig_bins + 1)
    a1.hist(edges[:-1], bins=edges, weights=sums.fig_counts, color="#457b9d")
    a1.axvline(0, color="k", lw=0.8)
    a1.set_xlabel("error, predicted - recorded (BPM)")
    a1.set_ylabel("steps")
    n = int(sums.cdf_counts.sum())
    q995 = 1.0
    if n:
        cdf = np.cumsum(sums.cdf_counts) / n
        xs = np.arange(1, len(cdf) + 1) * CDF_BIN_BPM  # upper edge of each |error| bin
        a2.plot(np.concatenate([[0.0], xs]), np.concatenate([[0.0], cdf]), color="#457b9d")
        mean = sums.abs_sum / n
        a2.axvline(mean, color=PRED_COLOR, ls="--", label=f"MAE {mean:.2f}")
        a2.legend(fontsize=8)
        q995 = float(xs[min(int(np.searchsorted(cdf, 0.995)), len(xs) - 1)])
    a2.set_xlabel("|error| (BPM)")
    a2.set_ylabel("fraction of steps")
    a2.set_xlim(0, max(q995, 1.0))
    fig.tight_layout()
    paths.append(_save(fig, out_dir / "error_distribution.png", dpi))

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    st = np.array([r["hr_true"] for r in scatter])
    sp = np.array([r["hr_pred"] for r in scatter])
    ax.scatter(st, sp, s=2, alpha=0.3, color="#457b9d", linewidths=0)
    lo, hi = 50, 220
    ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("recorded HR (BPM)")
    ax.set_ylabel("predicted HR (BPM)")
    ax.set_title(f"{len(scatter)} random valid steps (seeded)", fontsize=9)
    fig.tight_layout()
    paths.append(_save(fig, out_dir / "scatter.png", dpi))

    fig, ax = plt.subplots(figsize=(5, 3.4))
    wm = workout_mae[~np.isnan(workout_mae)]
    ax.hist(wm, bins=50, color="#457b9d")
    if wm.size:
        ax.axvline(wm.mean(), color=PRED_COLOR, ls="--", label=f"mean {wm.mean():.2f}")
        ax.axvline(np.median(wm), color="k", ls=":", label=f"median {np.median(wm):.2f}")
        ax.legend(fontsize=8)
    ax.set_xlabel("per-workout MAE (BPM)")
    ax.set_ylabel("workouts")
    fig.tight_layout()
    paths.append(_save(fig, out_dir / "per_workout_mae.png", dpi))

    fig, ax = plt.subplots(figsize=(5, 2.8))
    names = list(model_maes)
    ax.barh(names, [model_maes[n] for n in names], color="#457b9d")
    for i, n in enumerate(names):
        ax.text(model_maes[n], i, f" {model_maes[n]:.2f}", va="center", fontsize=8)
    ax.set_xlabel("test MAE (BPM)")
    ax.invert_yaxis()
    fig.tight_layout()
    paths.append(_save(fig, out_dir / "baselines.png", dpi))
    return paths


# ------------------------------------------------------------------------------- GIF animations


def _reveal_gif(
    panels: Sequence[tuple[Example, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    path: Path,
    title: str,
    n_frames: int,
    fps: int,
    dpi: int,
    ncols: int = 1,
) -> Path:
    """Animate the left-to-right reveal of recorded vs predicted HR in each panel.

    matplotlib draws the static frame once; each GIF frame only redraws the lines over the
    saved background (blitting: ~10x faster than FuncAnimation.save, which redraws the
    axes and ticks every frame). Pillow writes the GIF with one palette for all frames.
    """
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(5.0 * ncols, 1.8 * nrows + 0.6), squeeze=False, dpi=dpi
    )
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    artists = []
    for ax, (ex, truth, pred, ok, t) in zip(axes.flat, panels, strict=False):
        mins = np.asarray(t, dtype=np.float64) / 60.0
        y_t = np.where(ok, truth, np.nan)
        y_p = np.where(ok, pred, np.nan)
        finite = np.concatenate([y_t[ok], y_p[ok]]) if ok.any() else np.array([60.0, 200.0])
        ax.set_xlim(0, max(float(mins[ok].max()) if ok.any() else 1.0, 1e-3))
        ax.set_ylim(float(finite.min()) - 5, float(finite.max()) + 5)
        (lt,) = ax.plot([], [], color=TRUE_COLOR, lw=1.0, label="recorded", animated=True)
        (lp,) = ax.plot([], [], color=PRED_COLOR, lw=1.0, label="predicted", animated=True)
        txt = ax.text(0.01, 0.95, "", transform=ax.transAxes, va="top", fontsize=7, animated=True)
        ax.set_title(f"{ex.category} p{ex.quantile * 100:.0f} #{ex.workout_id}", fontsize=8)
        ax.tick_params(labelsize=6)
        artists.append((ax, lt, lp, txt, mins, y_t, y_p, truth, pred, ok))
    # legend with static proxies (the animated lines are not drawn in the background)
    axes.flat[0].legend(
        handles=[
            plt.Line2D([], [], color=TRUE_COLOR, label="recorded"),
            plt.Line2D([], [], color=PRED_COLOR, label="predicted"),
        ],
        fontsize=6,
        loc="lower right",
    )
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    canvas = fig.canvas
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)
    frames = []
    for frame in range(n_frames):
        canvas.restore_region(background)
        for ax, lt, lp, txt, mins, y_t, y_p, truth, pred, ok in artists:
            k = int(np.ceil(len(mins) * (frame + 1) / n_frames))
            lt.set_data(mins[:k], y_t[:k])
            lp.set_data(mins[:k], y_p[:k])
            seen = ok[:k]
            if seen.any():
                run = float(np.mean(np.abs(pred[:k][seen] - truth[:k][seen])))
                txt.set_text(f"running MAE {run:.1f}")
            for artist in (lt, lp, txt):
                ax.draw_artist(artist)
        frames.append(Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()))
        frames[-1] = frames[-1].convert("RGB")
    plt.close(fig)
    palette = frames[-1].quantize(colors=64, dither=Image.Dither.NONE)  # last frame has all colours
    frames = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(
        path,
        save_all=True,
        append_images=frames[1:],
        duration=int(round(1000 / max(fps, 1))),
        loop=0,
    )
    return path


def animations(
    traces: dict[int, Trace],
    examples: Sequence[Example],
    out_dir: Path,
    n_frames: int,
    fps: int,
    dpi: int,
) -> list[Path]:
    """One GIF per category (its p10/p50/p90 workouts) and a cross-category median comparison."""

    def panel(ex: Example):
        tr = traces[ex.row]
        return ex, tr.hr_true, tr.hr_pred, tr.valid, tr.elapsed

    paths = []
    cats = sorted({e.category for e in examples})
    for cat in cats:
        mine = sorted((e for e in examples if e.category == cat), key=lambda e: e.quantile)
        paths.append(
            _reveal_gif(
                [panel(e) for e in mine],
                out_dir / f"{cat}.gif",
                f"{cat}: workouts at the 10th/50th/90th percentile of MAE",
                n_frames,
                fps,
                dpi,
            )
        )
    medians = median_examples(examples)
    if medians:
        paths.append(
            _reveal_gif(
                [panel(e) for e in medians],
                out_dir / "category_comparison.gif",
                "median-MAE workout of each category",
                n_frames,
                fps,
                dpi,
                ncols=2,
            )
        )
    return paths
