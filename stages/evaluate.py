"""evaluate: models/model.pt + data/features + data/split -> predictions, metrics, plots.

Writes data/eval/predictions.parquet (every real step of val and test rows),
metrics/evaluate.json (test, val, baselines, comparison, categories, noise_floor, counts),
DVC plot data plots/*.json, PNG figures plots/figures/ and GIFs plots/animations/.
The simulator truth (`clean.truth`) is read for measurement only (noise floor, archetype
agreement of the input-only categories).
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hrpred.evaluate.categories import CategoryRules
from hrpred.evaluate.engine import (
    EvalConfig,
    EvalInputError,
    Predictor,
    build_report,
    evaluate_all,
    fit_baselines,
    input_categories,
    load_eval_data,
    read_truth,
    split_traces,
    workout_maes,
)
from hrpred.evaluate.plots import (
    animations,
    choose_examples,
    figures,
    plot_records,
    write_plot_data,
)
from hrpred.params import ParamError, Params, load_params

FEATURES = Path("data/features")
SPLIT = Path("data/split")
MODEL = Path("models/model.pt")
EVAL = Path("data/eval")
PLOTS = Path("plots")
METRICS = Path("metrics/evaluate.json")


def load_predictor(path: Path, names: list[str]) -> Predictor:
    """The trained LSTM as `features_unscaled[n, T, F] -> hr[n, T]`."""
    from hrpred.model import load_checkpoint, predict  # torch import only when needed

    try:
        model, ckpt = load_checkpoint(path)
    except Exception as e:  # noqa: BLE001 - any unreadable checkpoint gets the same message
        raise SystemExit(f"evaluate: cannot load {path} ({e}); rerun `dvc repro train`") from None
    if list(ckpt.get("features", [])) != list(names):
        raise SystemExit(
            f"evaluate: {path} was trained on features {ckpt.get('features')} but data/features "
            f"has {names}; rerun `dvc repro train`"
        )
    return lambda x: predict(model, ckpt, x)


def _config(p: Params) -> EvalConfig:
    c = p.section("categories")
    d = CategoryRules()
    try:
        rules = CategoryRules(
            smooth_steps=c.int("smooth_steps", d.smooth_steps),
            stop_speed_kmh=c.float("stop_speed_kmh", d.stop_speed_kmh),
            intervals_rel_band=c.float("intervals_rel_band", d.intervals_rel_band),
            intervals_min_switches=c.int("intervals_min_switches", d.intervals_min_switches),
            hilly_climb_m_per_km=c.float("hilly_climb_m_per_km", d.hilly_climb_m_per_km),
            progressive_rel_increase=c.float(
                "progressive_rel_increase", d.progressive_rel_increase
            ),
            easy_reference=c.str("easy_reference", d.easy_reference),
            easy_max_rel_speed=c.float("easy_max_rel_speed", d.easy_max_rel_speed),
            easy_max_speed_kmh=c.float("easy_max_speed_kmh", d.easy_max_speed_kmh),
        )
    except ValueError as e:
        raise ParamError(f"params.yaml: evaluate.categories: {e}") from None
    e = EvalConfig()
    cfg = EvalConfig(
        seed=p.int("seed", e.seed),
        batch_rows=p.int("batch_rows", e.batch_rows),
        ridge_alpha=p.float("ridge_alpha", e.ridge_alpha),
        physio_taus_s=tuple(p.floats("physio_taus_s", list(e.physio_taus_s))),
        physio_climb_clip=p.float("physio_climb_clip", e.physio_climb_clip),
        baseline_fit_rows=p.int("baseline_fit_rows", e.baseline_fit_rows),
        rules=rules,
        hr_band_edges=tuple(p.floats("hr_band_edges", list(e.hr_band_edges))),
    )
    if cfg.batch_rows < 1 or cfg.ridge_alpha < 0 or not cfg.physio_taus_s:
        raise ParamError("evaluate: batch_rows >= 1, ridge_alpha >= 0, physio_taus_s non-empty")
    if any(t <= 0 for t in cfg.physio_taus_s):
        raise ParamError("evaluate.physio_taus_s must all be > 0 (seconds)")
    return cfg


def _read_truth(path: str | None, workout_ids: np.ndarray) -> pd.DataFrame | None:
    """Simulator truth of `workout_ids` for measurement only; None when absent or unreadable.

    Filtered while reading: the HR lists of every simulated workout would not fit in memory at
    full scale.
    """
    if not path or not Path(path).exists():
        return None
    try:
        return read_truth(Path(path), workout_ids)
    except Exception as e:  # noqa: BLE001 - truth is optional: warn and go on
        print(f"evaluate: ignoring unreadable truth {path} ({e})", file=sys.stderr)
        return None


def _json_ready(value: Any) -> Any:
    """Round floats (stable, readable JSON) and turn NaN/inf into null."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return round(v, 6) if math.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def run(p: Params, truth_path: str | None, predictor_factory=load_predictor) -> dict[str, Any]:  # noqa: ANN001 - factory is injectable for tests
    """Everything the stage does; returns the metrics dict."""
    cfg = _config(p)
    try:
        data = load_eval_data(FEATURES, SPLIT)
    except EvalInputError as e:
        raise SystemExit(f"evaluate: {e}") from None
    if not MODEL.exists():
        raise SystemExit(f"evaluate: {MODEL} not found: run `dvc repro train` first")
    if len(data.rows["test"]) == 0:
        raise SystemExit("evaluate: the test split is empty; check split.fractions")
    test_ids = data.index["workout_id"].to_numpy()[data.rows["test"]]
    EVAL.mkdir(parents=True, exist_ok=True)
    try:
        baselines = fit_baselines(data, cfg)  # first: its peak memory does not add to the truth's
        truth = _read_truth(truth_path, test_ids)
        categories = input_categories(data, data.rows["test"], cfg.rules, cfg.batch_rows)
        predict = predictor_factory(MODEL, data.names)  # torch's memory after the fit's peak
        results = evaluate_all(
            data,
            predict,
            baselines,
            cfg,
            EVAL / "predictions.parquet",
            truth,
            p.int("n_scatter", 2000),
        )
    except EvalInputError as e:
        raise SystemExit(f"evaluate: {e}") from None
    test = results["test"]
    report = build_report(data, results, baselines.params(), categories, cfg, truth)
    METRICS.parent.mkdir(parents=True, exist_ok=True)
    METRICS.write_text(json.dumps(_json_ready(report), indent=2) + "\n")

    if PLOTS.exists():
        shutil.rmtree(PLOTS)  # whole output rewritten: no stale figures from older runs
    wmae = workout_maes(test)
    examples = choose_examples(
        wmae,
        categories,
        test_ids,
        data.lengths(test.rows),  # input length, not the HR mask: no quality filter
        p.floats("example_quantiles", [0.1, 0.5, 0.9]),
        cfg.seed,
        window=p.float("example_window", 0.05),
        min_steps=p.int("example_min_steps", 100),
    )
    # examples index positions in the test split, not rows of data/features
    traces = split_traces(data, test, examples)
    records = plot_records(test.plot, wmae, examples, traces)
    write_plot_data(records, PLOTS)
    maes = {"LSTM": report["test"]["mae"]}
    maes.update({name: b["test"]["mae"] for name, b in report["baselines"].items()})
    figures(
        test.plot,
        traces,
        wmae,
        examples,
        records["scatter"],
        maes,
        PLOTS / "figures",
        p.int("figure_dpi", 90),
    )
    if p.bool("animations", True):
        animations(
            traces,
            examples,
            PLOTS / "animations",
            p.int("animation_frames", 24),
            p.int("animation_fps", 8),
            p.int("animation_dpi", 80),
        )
    return report


def main() -> None:
    try:
        p = load_params("evaluate")
        truth_path = load_params("clean").optional_str("truth")
        report = run(p, truth_path)
    except ParamError as e:
        raise SystemExit(f"evaluate: {e}") from None
    t, c = report["test"], report["baselines"]["constant"]["test"]
    print(
        f"evaluate: test MAE {t['mae']:.2f} RMSE {t['rmse']:.2f} BPM "
        f"(constant {c['mae']:.2f}, ridge {report['baselines']['ridge']['test']['mae']:.2f}, "
        f"physio {report['baselines']['physio']['test']['mae']:.2f}) on {t['n_workouts']} workouts",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
