"""The evaluate stage as one library call: `run_evaluate(cfg, personal, truth_path, layout)`.

Reads models/model.pt, data/features and data/split (through `hrpred.store`); writes
data/eval/predictions.parquet and data/eval/workouts.parquet (every step and every workout of
the val and test rows with each predictor's curve, the headline's band and the plan that made
it: `hrpred.evaluate.saved`, from which the headline figures recompute), models/calibration.json
(the band's conformal constants, from val: `hrpred.evaluate.band`), metrics/evaluate.json
(test, val, baselines, comparison, categories, noise_floor, diagnostics, counts), DVC plot data
plots/*.json, PNG figures plots/figures/ and GIFs plots/animations/. The simulator truth
(`clean.truth`) is read for measurement only (noise floor, archetype agreement of the
input-only categories, the runs after a level change).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hrpred.evaluate.band import band_plot, band_report, bands, calibrate_on_val, take_band
from hrpred.evaluate.config import EvalConfig
from hrpred.evaluate.figures import Job, animation_jobs, drawn_beside, figures
from hrpred.evaluate.inputs import EvalInputError, input_categories, optional_truth
from hrpred.evaluate.personal import learned_personal, personalise
from hrpred.evaluate.personal_report import (
    AFTER_CHANGE_RUNS,
    Resampling,
    after_change,
    curve_sums,
    entry,
    history_vs_constant,
    made_worse,
    mae_by_history,
    personal_traces,
    runners_of_test_rows,
    runs_after_change,
)
from hrpred.evaluate.plots import choose_examples, plot_records, write_plot_data
from hrpred.evaluate.report import build_report, split_traces, workout_maes
from hrpred.evaluate.results import LearnedPersonal, PersonalResult, Predictor, SplitResult
from hrpred.evaluate.saved import workout_table, write_predictions, write_workouts
from hrpred.evaluate.scoring import evaluate_all, fit_baselines
from hrpred.personal.config import PersonalConfig
from hrpred.store import Dataset, Layout, StoreError, open_dataset, open_history, write_json
from hrpred.uncertainty import band_of, write_calibration

PredictorFactory = Callable[[Path, list[str]], Predictor]
# (model path, features dir, dataset) -> the learned history-conditioned network, or None
# (a population model: personalised by the offset only)
PersonalFactory = Callable[[Path, Path, Dataset], LearnedPersonal | None]


def load_predictor(path: Path, names: list[str]) -> Predictor:
    """The trained LSTM as `features_unscaled[n, T, F] -> hr[n, T]`."""
    from hrpred.model import load_checkpoint, predict  # torch import only when needed

    try:
        model, ckpt = load_checkpoint(path)
    except Exception as e:  # noqa: BLE001 - any unreadable checkpoint gets the same message
        raise EvalInputError(f"cannot load {path} ({e}); rerun `dvc repro train`") from None
    if list(ckpt.get("features", [])) != list(names):
        raise EvalInputError(
            f"{path} was trained on features {ckpt.get('features')} but data/features "
            f"has {names}; rerun `dvc repro train`"
        )
    return lambda x: predict(model, ckpt, x)


@contextmanager
def inference_threads(n: int) -> Iterator[None]:
    """The model's predictions in `n` threads, each part of a batch on 1 torch thread
    (`evaluate.predict_threads`, `hrpred.threads.predict_parts`), with freed buffers kept for
    reuse (`hrpred.threads.keep_freed_buffers`); torch is imported only now: its memory comes
    after the baselines' peak."""
    from hrpred.threads import keep_freed_buffers, predict_parts, torch_threads

    keep_freed_buffers()
    with torch_threads(1), predict_parts(n):
        yield


def run_evaluate(
    cfg: EvalConfig,
    pcfg: PersonalConfig,
    truth_path: str | None,
    layout: Layout,
    predictor_factory: PredictorFactory = load_predictor,
    personal_factory: PersonalFactory = learned_personal,
) -> dict[str, Any]:
    """Everything the stage does; returns the metrics dict (also in metrics/evaluate.json)."""
    with ExitStack() as beside:  # inference threads, then the drawing processes
        ds = open_dataset(layout.features_dir, layout.split_dir)
        history = open_history(layout.split_dir)
        if not layout.model.exists():
            raise StoreError(f"{layout.model} not found: run `dvc repro train` first")
        test_rows = ds.rows["test"]
        if len(test_rows) == 0:
            raise EvalInputError("the test split is empty; check split.fractions")
        test_ids = ds.data.index["workout_id"].to_numpy()[test_rows]
        layout.eval_dir.mkdir(parents=True, exist_ok=True)
        baselines = fit_baselines(ds, cfg)  # first: its peak memory does not add to the truth's
        truth = optional_truth(layout.resolve(truth_path) if truth_path else None, test_ids)
        categories = input_categories(ds, test_rows, cfg.categories, cfg.batch_rows)
        beside.enter_context(inference_threads(cfg.predict_threads))  # torch after the fit's peak
        predict = predictor_factory(layout.model, ds.data.names)
        results = evaluate_all(ds, predict, baselines, cfg, truth)
        learned = personal_factory(layout.model, layout.features_dir, ds)
        res = personalise(ds, history, results, predict, baselines, pcfg, cfg.batch_rows, learned)
        report = personal_report(ds, res, results, baselines.params(), pcfg, categories, truth)
        runs_after = runs_after_change(ds, res, history, truth)
        sums = curve_sums(ds, res)
        test = res.take("test")
        draw = Resampling(runners_of_test_rows(ds, res), cfg.runner_resamples, cfg.seed)
        report["test"]["after_change"] = after_change(sums, runs_after, draw)
        report["test"]["runners_made_worse"] = made_worse(sums, draw)
        constant = res.baseline_cold["constant"].take(test)
        report["test"]["history_3plus"] = history_vs_constant(
            sums["headline"], constant, res.sizes[test], draw
        )
        band = None
        if learned is not None:
            cal = calibrate_on_val(ds, res, cfg.band)
            write_calibration(layout.calibration, cal)
            band = bands(ds, res, cal)
            groups = {}
            if runs_after is not None:
                groups["after_change"] = (runs_after >= 1) & (runs_after <= AFTER_CHANGE_RUNS)
            report["test"]["band"] = band_report(
                ds, res, cal, take_band(band, test), baselines.constant.value, draw, groups,
            )  # fmt: skip
        else:  # a population model has no history-aware spread: no band (the file says so)
            write_json(layout.calibration, {"format": "hrpred-calibration", "available": False})
        cold_band = None
        if learned is not None:
            cold_band = _cold_band(ds, results["test"], learned, cal)
        jobs = write_plots(ds, results["test"], categories, report, cfg, layout.plots_dir,
                           cold_band)  # fmt: skip
        # the figures and GIFs are drawn in other processes while the tables are written
        beside.enter_context(drawn_beside(jobs, cfg.plot_workers))
        write_predictions(layout.predictions, ds, res, band)
        table = workout_table(ds, res, band, runs_after)
        write_workouts(layout.eval_workouts, table)
        write_json(layout.metrics("evaluate"), report, digits=6)
        head = res.curves["headline"][test]
        lower, upper = (head, head) if band is None else (band.lower[test], band.upper[test])
        traces = personal_traces(
            ds, res, lower, upper, cfg.example_quantiles, cfg.example_min_steps
        )
        # the MAE-by-history and band plots read the saved per-workout table
        write_plot_data(
            {
                "mae_by_history": mae_by_history(table),
                "personal_traces": traces,
                "band_by_history": band_plot(table) if band is not None else [],
            },
            layout.plots_dir,
        )
        return report


def _cold_band(
    ds: Dataset, test: SplitResult, learned: LearnedPersonal, cal: Any
) -> Callable[[int], tuple[np.ndarray, np.ndarray]]:
    """Test position -> the calibrated band of the COLD prediction (the example traces and
    GIFs draw it): its spread with no context, the 0-history multiplier, factor 1."""
    from hrpred.store import read_rows

    def at(pos: int) -> tuple[np.ndarray, np.ndarray]:
        x = read_rows(ds.data.features, test.rows[pos : pos + 1])
        hr, spread = learned.cold(x)
        b = band_of(cal, hr[0], spread[0], 0)
        return b.lower, b.upper

    return at


def personal_report(
    ds: Dataset,
    res: PersonalResult,
    results: dict[str, SplitResult],
    fitted: dict[str, dict[str, float]],
    pcfg: PersonalConfig,
    categories: Sequence[str],
    truth: pd.DataFrame | None,
) -> dict[str, Any]:
    """metrics/evaluate.json before the band: the model's test entry is the headline (cold =
    the population prediction); `offset` (population + offset) and `learned` (network +
    residual correction) are listed with the baselines, each baseline with the offset rule."""
    test = res.take("test")
    sizes = res.sizes[test]
    sums = curve_sums(ds, res)
    entries = {
        "model": entry(sums["cold"], sums["headline"], sizes),
        "offset": entry(sums["cold"], sums["offset"], sizes),
        **{
            b: entry(res.baseline_cold[b].take(test), res.baseline_personal[b].take(test), sizes)
            for b in res.baseline_cold
        },  # fmt: skip
    }
    fitted = dict(fitted)
    fitted["offset"] = asdict(pcfg.offset)
    if res.has_learned:
        entries["learned"] = entry(sums["cold"], sums["learned"], sizes)
        fitted["learned"] = {"residual": asdict(pcfg.residual)}
    report = build_report(ds, results, fitted, categories, truth, entries)
    weights = np.array([p.weights for p in res.plans])[test]
    report["test"]["learned_personal_model"] = res.learned
    report["test"]["personalisation"] = {
        "headline_weights_mean": dict(zip(("population", "offset", "learned"),
                                          map(float, weights.mean(axis=0)), strict=True)),
        "change_found_share": float(np.mean([res.plans[i].change.found for i in test])),
        "rules": pcfg.to_json(),
    }  # fmt: skip
    return report


def write_plots(
    ds: Dataset,
    test: SplitResult,
    categories: Sequence[str],
    report: dict[str, Any],
    cfg: EvalConfig,
    out_dir: Path,
    cold_band: Callable[[int], tuple[np.ndarray, np.ndarray]] | None = None,
) -> list[Job]:
    """plots/: DVC plot data, all rewritten; returns the jobs that draw the PNG figures and
    (optionally) GIFs, for `drawn_beside`. `cold_band`: test position -> the cold
    prediction's 80% band, drawn around the example traces."""
    if out_dir.exists():
        shutil.rmtree(out_dir)  # whole output rewritten: no stale figures from older runs
    wmae = workout_maes(test)
    examples = choose_examples(
        wmae,
        categories,
        ds.data.index["workout_id"].to_numpy()[test.rows],
        ds.data.lengths(test.rows),  # input length, not the HR mask: no quality filter
        cfg.example_quantiles,
        cfg.seed,
        window=cfg.example_window,
        min_steps=cfg.example_min_steps,
    )
    # examples index positions in the test split, not rows of data/features
    traces = split_traces(ds, test, examples)
    if cold_band is not None:
        traces = {pos: replace(tr, band=cold_band(pos)) for pos, tr in traces.items()}
    records = plot_records(test.plot, wmae, examples, traces)
    write_plot_data(records, out_dir)
    maes = {"LSTM": report["test"]["mae"]}
    maes.update({name: b["test"]["mae"] for name, b in report["baselines"].items()})
    jobs: list[Job] = [(figures, (test.plot, traces, wmae, examples, records["scatter"], maes,
                                  out_dir / "figures", cfg.figure_dpi), {})]  # fmt: skip
    if cfg.animations:
        jobs += animation_jobs(
            traces, examples, out_dir / "animations",
            cfg.animation_frames, cfg.animation_fps, cfg.animation_dpi,
        )  # fmt: skip
    return jobs


def summary_line(report: dict[str, Any]) -> str:
    """One line for stderr: test MAE/RMSE of the model and each baseline's MAE."""
    t, b = report["test"], report["baselines"]
    return (
        f"evaluate: test MAE personal {t['mae']:.2f} (cold {t['cold']['mae']:.2f}) RMSE "
        f"{t['rmse']:.2f} BPM (personal/cold: "
        + ", ".join(
            f"{n} {b[n]['test']['mae']:.2f}/{b[n]['test']['cold']['mae']:.2f}"
            for n in ("constant", "ridge", "physio", "offset")
        )
        + f") on {t['n_workouts']} workouts"
    )
