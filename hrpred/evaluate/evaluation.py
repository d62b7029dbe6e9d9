"""The evaluate stage as one library call: `run_evaluate(cfg, truth_path, layout)`.

Reads models/model.pt, data/features and data/split (through `hrpred.store`); writes
data/eval/predictions.parquet (every real step of val and test rows), models/calibration.json
(the band's conformal constants, from val: `hrpred.evaluate.band`), metrics/evaluate.json
(test, val, baselines, comparison, categories, noise_floor, diagnostics, counts), DVC plot data
plots/*.json, PNG figures plots/figures/ and GIFs plots/animations/. The simulator truth
(`clean.truth`) is read for measurement only (noise floor, archetype agreement of the
input-only categories).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hrpred.evaluate.band import band_plot, band_report, calibrate_on_val, example_band
from hrpred.evaluate.config import EvalConfig
from hrpred.evaluate.figures import animations, figures
from hrpred.evaluate.inputs import EvalInputError, input_categories, optional_truth
from hrpred.evaluate.personal import (
    learned_personal,
    mae_by_history,
    personal_traces,
    personalise,
)
from hrpred.evaluate.plots import choose_examples, plot_records, write_plot_data
from hrpred.evaluate.report import build_report, split_traces, workout_maes
from hrpred.evaluate.results import LearnedPersonal, PersonalResult, Predictor, SplitResult
from hrpred.evaluate.scoring import evaluate_all, fit_baselines
from hrpred.personal.config import OffsetConfig
from hrpred.store import Dataset, Layout, StoreError, open_dataset, open_history, write_json
from hrpred.uncertainty import write_calibration

PredictorFactory = Callable[[Path, list[str]], Predictor]
# (model path, features dir, dataset, history table) -> the learned history-conditioned model
# as a personalised predictor, or None (the model is then personalised by the offset)
PersonalFactory = Callable[[Path, Path, Dataset, pd.DataFrame], LearnedPersonal | None]


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


def run_evaluate(
    cfg: EvalConfig,
    offset_cfg: OffsetConfig,
    residual_cfg: OffsetConfig,
    truth_path: str | None,
    layout: Layout,
    predictor_factory: PredictorFactory = load_predictor,
    personal_factory: PersonalFactory = learned_personal,
) -> dict[str, Any]:
    """Everything the stage does; returns the metrics dict (also in metrics/evaluate.json)."""
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
    predict = predictor_factory(layout.model, ds.data.names)  # torch after the fit's peak
    results = evaluate_all(ds, predict, baselines, cfg, layout.predictions, truth)
    learned = personal_factory(layout.model, layout.features_dir, ds, history)
    personal = personalise(
        ds, results, history, predict, baselines, cfg, offset_cfg, learned, residual_cfg
    )
    fitted = baselines.params()
    fitted["offset"] = asdict(offset_cfg)
    report = build_report(ds, results, fitted, categories, truth, personal)
    band = None
    if learned is not None:
        report["test"]["residual_correction"] = asdict(residual_cfg)
        cal = calibrate_on_val(ds, results["val"], history, learned, cfg, residual_cfg, cfg.band)
        write_calibration(layout.calibration, cal)
        band = report["test"]["band"] = band_report(
            ds, results["test"], results["val"], personal, cal, baselines.constant.value,
            cfg.band.runner_resamples, cfg.seed,
        )  # fmt: skip
    else:  # a population model has no history-aware spread: no band (the file says so)
        write_json(layout.calibration, {"format": "hrpred-calibration", "available": False})
    write_json(layout.metrics("evaluate"), report, digits=6)
    cold_band = None
    if learned is not None:
        cold_band = partial(example_band, ds, results["test"], learned, cal)
    write_plots(ds, results["test"], categories, report, cfg, layout.plots_dir, personal, cold_band)
    # a population model has no band: the plot file is an empty list
    write_plot_data({"band_by_history": band_plot(band) if band else []}, layout.plots_dir)
    return report


def write_plots(
    ds: Dataset,
    test: SplitResult,
    categories: Sequence[str],
    report: dict[str, Any],
    cfg: EvalConfig,
    out_dir: Path,
    personal: PersonalResult,
    cold_band: Callable[[int], tuple[np.ndarray, np.ndarray]] | None = None,
) -> None:
    """plots/: DVC plot data, PNG figures and (optionally) GIFs, all rewritten. `cold_band`:
    test position -> the cold prediction's 80% band, drawn around the example traces."""
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
    records["mae_by_history"] = mae_by_history(personal)
    records["personal_traces"] = personal_traces(
        ds, test, personal, cfg.example_quantiles, cfg.example_min_steps
    )
    write_plot_data(records, out_dir)
    maes = {"LSTM": report["test"]["mae"]}
    maes.update({name: b["test"]["mae"] for name, b in report["baselines"].items()})
    figures(
        test.plot, traces, wmae, examples, records["scatter"], maes, out_dir / "figures",
        cfg.figure_dpi,
    )  # fmt: skip
    if cfg.animations:
        animations(
            traces, examples, out_dir / "animations",
            cfg.animation_frames, cfg.animation_fps, cfg.animation_dpi,
        )  # fmt: skip


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
