"""Evaluation figures: PNG figures (plots/figures/) and GIF animations (plots/animations/).

They draw the records of `hrpred.evaluate.plots` (plot sums, examples, traces). Saved without
version strings, so the same inputs give the same bytes.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: stages and tests run without a display

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from hrpred.evaluate.plots import (
    CDF_BIN_BPM,
    Example,
    PlotSums,
    Trace,
    median_examples,
)

TRUE_COLOR = "#2a9d8f"
PRED_COLOR = "#e76f51"


# ------------------------------------------------------------------------------- PNG figures


def _save(fig: plt.Figure, path: Path, dpi: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, metadata={"Software": None})  # no version string: stable bytes
    plt.close(fig)
    return path


def _band(ax: plt.Axes, mins: np.ndarray, band, valid: np.ndarray) -> None:
    """The prediction's 80% band as a shaded area (nothing when there is no band)."""
    if band is not None:
        lo, hi = (np.where(valid, b, np.nan) for b in band)
        ax.fill_between(mins, lo, hi, color=PRED_COLOR, alpha=0.2, lw=0, label="80% band")


def _trace(ax: plt.Axes, hr_true, hr_pred, valid, elapsed, title: str, band=None) -> None:
    mins = np.asarray(elapsed, dtype=np.float64) / 60.0
    _band(ax, mins, band, valid)
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
            _trace(ax, tr.hr_true, tr.hr_pred, tr.valid, tr.elapsed, title, tr.band)
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
    panels: Sequence[tuple[Example, np.ndarray, np.ndarray, np.ndarray, np.ndarray, Any]],
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
    for ax, (ex, truth, pred, ok, t, band) in zip(axes.flat, panels, strict=False):
        mins = np.asarray(t, dtype=np.float64) / 60.0
        y_t = np.where(ok, truth, np.nan)
        y_p = np.where(ok, pred, np.nan)
        _band(ax, mins, band, ok)  # static: drawn once in the background, fully visible
        parts = [y_t[ok], y_p[ok], *((b[ok] for b in band) if band is not None else ())]
        finite = np.concatenate(parts) if ok.any() else np.array([60.0, 200.0])
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


Job = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]  # function, args, kwargs


def animation_jobs(
    traces: dict[int, Trace],
    examples: Sequence[Example],
    out_dir: Path,
    n_frames: int,
    fps: int,
    dpi: int,
) -> list[Job]:
    """One GIF per category (its p10/p50/p90 workouts) and a cross-category median
    comparison, as jobs for `draw`."""

    def panel(ex: Example):
        tr = traces[ex.row]
        return ex, tr.hr_true, tr.hr_pred, tr.valid, tr.elapsed, tr.band

    jobs: list[Job] = []
    for cat in sorted({e.category for e in examples}):
        mine = sorted((e for e in examples if e.category == cat), key=lambda e: e.quantile)
        title = f"{cat}: workouts at the 10th/50th/90th percentile of MAE"
        path = out_dir / f"{cat}.gif"
        jobs.append((_reveal_gif, ([panel(e) for e in mine], path, title, n_frames, fps, dpi), {}))
    medians = median_examples(examples)
    if medians:
        args = ([panel(e) for e in medians], out_dir / "category_comparison.gif",
                "median-MAE workout of each category", n_frames, fps, dpi)  # fmt: skip
        jobs.append((_reveal_gif, args, {"ncols": 2}))
    return jobs


def _run_job(job: Job) -> Any:
    fn, args, kwargs = job
    return fn(*args, **kwargs)


@contextmanager
def drawn_beside(jobs: Sequence[Job], workers: int) -> Iterator[None]:
    """Run drawing jobs (each writes its own files) in `workers` processes while the body runs;
    leaving waits for them and raises a job's error (1 worker or 1 job: drawn here, first).

    Forked on Linux (nothing to import again; the children only draw and write with
    matplotlib and Pillow, never torch), spawned elsewhere; each file's bytes are the same
    whichever process draws it. An error in the body stops the drawing."""
    if workers <= 1 or len(jobs) <= 1:
        for j in jobs:
            _run_job(j)
        yield
        return
    ctx = mp.get_context("fork" if sys.platform == "linux" else "spawn")
    with ctx.Pool(min(workers, len(jobs))) as pool:  # leaving `with` terminates the pool
        pending = pool.map_async(_run_job, jobs, chunksize=1)
        yield
        pending.get()
